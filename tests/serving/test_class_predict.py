"""Multiclass and multilabel prediction through HTTP with real ONNX Runtime: the response per task,
the decision rules, early exit, parity with a direct run of the full graph, the stored rows, and a
binary model's response keys exactly as before."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from class_models import ClassModel, write_class_model
from serving_helpers import image_bytes, insert_model, model_columns, multipart, noise_images
from sqlalchemy import select

from app.cohorts.image_limits import ImageLimits
from app.modelpkg.manifest import Decision
from app.modelpkg.task import Task
from app.serving.models import Prediction
from app.serving.preprocess import decode_images

CLASSES = ["nevus", "melanoma", "keratosis"]
FINDINGS = ["effusion", "oedema", "cardiomegaly"]
BINARY_KEYS = [
    "model_id",
    "model_sha256",
    "evaluation_id",
    "alias",
    "gate_override",
    "operating_threshold",
    "predictions",
]
BINARY_PREDICTION_KEYS = ["id", "image", "probability", "label", "exit_index", "confidence", "demographics"]


def register(settings, session_factory, tmp_path, name: str, task: Task, decision: Decision | None, **kw) -> ClassModel:
    model = write_class_model(tmp_path / name, task, decision, **kw)
    insert_model(session_factory, settings, model.folder, model_columns(model.folder, f"mdl_{name}"))
    return model


def images(n: int = 8) -> list[bytes]:
    """Noise images plus strongly coloured ones, so that logits spread and both exits decide some."""
    rng = np.random.default_rng(11)
    bold = [image_bytes(np.full((20, 20, 3), rng.integers(0, 256, 3), dtype=np.uint8)) for _ in range(n // 2)]
    return [*noise_images(n - n // 2, seed=4), *bold]


def reference(model: ClassModel, data: list[bytes], settings, probs_of) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities at the deciding exit, exit index) from one direct ONNX Runtime run of full.onnx."""
    manifest = model.manifest
    pixels = decode_images(
        data, [f"img{i}" for i in range(len(data))], manifest.input, ImageLimits.from_settings(settings)
    )
    session = ort.InferenceSession(str(model.folder / "full.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": manifest.preprocessing.normalise(pixels)})[0].astype(np.float64)
    probs, confidence = probs_of(logits)  # (n, exits, width), (n, exits)
    theta = manifest.exit_thresholds[0]
    exits = np.where(confidence[:, 0] >= theta, 0, 1)
    return probs[np.arange(len(data)), exits], exits


def softmax_exits(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs = e / e.sum(axis=2, keepdims=True)
    return probs, probs.max(axis=2)


def sigmoid_exits(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = 1.0 / (1.0 + np.exp(-logits))
    return probs, np.maximum(probs, 1 - probs).min(axis=2)


def test_multiclass_predict_argmax_exits_and_parity(client, keys, settings, session_factory, tmp_path):
    model = register(
        settings,
        session_factory,
        tmp_path,
        "skin",
        Task(kind="multiclass", classes=CLASSES),
        Decision(rule="argmax", thresholds=None),
        exit_theta=0.9,
    )
    data = images()
    demographics = [{"skin_type": "V-VI"} if i % 2 else {"skin_type": "I-II"} for i in range(len(data))]
    response = client.post(
        "/v1/models/mdl_skin/predict", headers=keys.headers(role="predictor"), **multipart(data, demographics)
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["task"] == "multiclass" and body["classes"] == CLASSES and "operating_threshold" not in body
    assert body["decision"] == {"rule": "argmax", "thresholds": None, "threshold_rules": None, "chosen_on": "val"}
    assert body["model_sha256"] == model_columns(model.folder, "x")["sha256"] and body["evaluation_id"] is None
    expected, exits = reference(model, data, settings, softmax_exits)
    assert set(exits) == {0, 1}, "both exits decide some of these images"
    for p, want, exit_index in zip(body["predictions"], expected, exits, strict=True):
        probs = np.array([p["probabilities"][c] for c in CLASSES])
        assert list(p["probabilities"]) == CLASSES
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(probs, want, atol=1e-5)  # parity with a direct run of full.onnx
        assert p["exit_index"] == exit_index
        assert p["predicted_class"] == CLASSES[int(np.argmax(probs))] == CLASSES[p["label"]]
        assert p["probability"] == p["probabilities"][p["predicted_class"]] == p["confidence"] == max(probs)
    with session_factory() as session:
        rows = {r.id: r for r in session.scalars(select(Prediction))}
    for p in body["predictions"]:
        row = rows[p["id"]]
        assert (row.probability, row.label, row.exit_index) == (p["probability"], p["label"], p["exit_index"])
        assert row.output == {"task": "multiclass", "probabilities": list(p["probabilities"].values())}
        assert row.outcome is None and row.outcome_findings is None


def test_multiclass_class_threshold_rule(client, keys, settings, session_factory, tmp_path):
    thresholds = [0.8, 0.1, 0.1]
    register(
        settings,
        session_factory,
        tmp_path,
        "rare",
        Task(kind="multiclass", classes=CLASSES),
        Decision(rule="argmax of p / class threshold", thresholds=thresholds),
        exit_theta=0.9,
        scale=1.0,
    )
    response = client.post("/v1/models/mdl_rare/predict", headers=keys.headers(), **multipart(images()))
    assert response.status_code == 200, response.json()
    predictions = response.json()["predictions"]
    differs = 0
    for p in predictions:
        probs = np.array([p["probabilities"][c] for c in CLASSES])
        assert p["label"] == int(np.argmax(probs / thresholds))
        assert p["probability"] == probs[p["label"]] and p["confidence"] == max(probs)
        differs += p["label"] != int(np.argmax(probs))
    assert differs > 0, "the rule picks a rarer class over the most probable one somewhere"


def test_multilabel_predict_findings_exits_and_parity(client, keys, settings, session_factory, tmp_path):
    thresholds = [0.3, 0.5, 0.7]
    model = register(
        settings,
        session_factory,
        tmp_path,
        "cxr",
        Task(kind="multilabel", classes=FINDINGS),
        Decision(rule="per-finding threshold", thresholds=thresholds),
        exit_theta=0.75,
        scale=6.0,
    )
    data = images()
    response = client.post("/v1/models/mdl_cxr/predict", headers=keys.headers(), **multipart(data))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["task"] == "multilabel" and body["findings"] == FINDINGS
    expected, exits = reference(model, data, settings, sigmoid_exits)
    assert set(exits) == {0, 1}, "both exits decide some of these images"
    for p, want, exit_index in zip(body["predictions"], expected, exits, strict=True):
        assert list(p["findings"]) == FINDINGS and "probability" not in p and "label" not in p
        probs = np.array([p["findings"][f]["probability"] for f in FINDINGS])
        np.testing.assert_allclose(probs, want, atol=1e-5)
        assert p["exit_index"] == exit_index
        assert [p["findings"][f]["threshold"] for f in FINDINGS] == thresholds
        assert [p["findings"][f]["decision"] for f in FINDINGS] == (probs >= thresholds).astype(int).tolist()
        assert p["confidence"] == pytest.approx(np.maximum(probs, 1 - probs).min())
    with session_factory() as session:
        rows = {r.id: r for r in session.scalars(select(Prediction))}
    for p in body["predictions"]:
        row, findings = rows[p["id"]], p["findings"].values()
        assert row.probability == max(f["probability"] for f in findings)
        assert row.label == int(any(f["decision"] for f in findings))
        assert row.output["decisions"] == [f["decision"] for f in findings]


def test_binary_response_keys_are_unchanged(client, keys, settings, session_factory, tmp_path):
    register(settings, session_factory, tmp_path, "bin", Task(), None, exit_theta=0.9, operating_threshold=0.4)
    response = client.post("/v1/models/mdl_bin/predict", headers=keys.headers(), **multipart(images(4)))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert list(body) == BINARY_KEYS and body["operating_threshold"] == 0.4
    for p in body["predictions"]:
        assert list(p) == BINARY_PREDICTION_KEYS
        assert p["label"] == int(p["probability"] >= 0.4)
        assert p["confidence"] == pytest.approx(max(p["probability"], 1 - p["probability"]))
    with session_factory() as session:
        assert {r.output for r in session.scalars(select(Prediction))} == {None}
    outcome = client.post(
        f"/v1/predictions/{body['predictions'][0]['id']}/outcome", headers=keys.headers(), json={"outcome": 1}
    )
    assert outcome.status_code == 200, outcome.json()
    assert list(outcome.json()) == [
        *("id", "model_version_id", "created_at", "probability", "label", "exit_index", "confidence"),
        *("demographics", "outcome", "outcome_at"),
    ]
    for wrong in ({"outcome": "1"}, {"findings": {"x": 1}}, {"outcome": 1, "findings": {"x": 1}}, {}):
        refused = client.post(
            f"/v1/predictions/{body['predictions'][1]['id']}/outcome", headers=keys.headers(), json=wrong
        )
        assert refused.status_code == 422, (wrong, refused.json())
