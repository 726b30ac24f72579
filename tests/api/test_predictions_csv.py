"""Per-sample predictions as CSV: exactly what was evaluated, owner organisation only, streamed in
bounded memory from the stored predictions."""

from __future__ import annotations

import csv
import io
import tracemalloc

import numpy as np
from audit_helpers import post_audit, predictions_csv
from job_helpers import organisation_id

from app.db.engine import transaction
from app.fairness import predictions_csv as module
from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.predictions_csv import PredictionsCsv, patient_hash
from app.fairness.storage import evaluation_dir, save_predictions, store_evaluation


def rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def obj(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def test_audit_predictions_download_as_uploaded(client, keys):
    headers = keys.headers()
    uploaded = predictions_csv(n=50)
    evaluation_id = post_audit(client, headers, uploaded).json()["id"]
    table = rows(client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=headers))
    assert list(table[0]) == [
        "sample_id",
        "patient",
        "sex",
        "site",
        "label",
        "score_exit_0",
        "exit_taken",
        "policy_score",
        "threshold",
    ]
    original = list(csv.DictReader(io.StringIO(uploaded)))
    assert [r["sample_id"] for r in table] == [r["sample_id"] for r in original]
    for mine, theirs in zip(table, original, strict=True):
        assert (mine["sex"], mine["site"], mine["label"]) == (theirs["sex"], theirs["site"], theirs["y_true"])
        assert float(mine["score_exit_0"]) == float(mine["policy_score"]) == float(theirs["y_score"])
        assert mine["patient"] == "" and mine["exit_taken"] == "0" and float(mine["threshold"]) == 0.5

    other = keys.headers(org="Other Hospital")
    assert client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=other).status_code == 404
    assert client.get("/v1/evaluations/evl_nope/predictions.csv", headers=headers).status_code == 404


def test_multi_exit_pooled_predictions_have_patients_folds_and_chunks(
    client, keys, settings, session_factory, monkeypatch
):
    monkeypatch.setattr(module, "CHUNK_ROWS", 2)  # several chunks from 5 rows
    scores = np.asfortranarray([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.6, 0.5, 0.4], [0.2, 0.3, 0.9], [0.5, 0.5, 0.5]])
    predictions = PredictionSet(
        y_true=np.array([0, 1, 1, 0, 1]),
        exit_scores=scores,  # column-major on disk: read one stream per exit
        groups={"sex": obj(["female", None, "male", "female", "male"])},
        threshold=np.array([0.5, 0.5, 0.4, 0.6, 0.6]),  # each fold model's own
        exit_index=np.array([0, 2, 1, 2, 0]),
        exit_cost=np.array([0.2, 0.6, 1.0]),
        sample_ids=obj(["a", "b", "c", "d", "e"]),
        clusters=obj(["p1", "p1", "p2", "p3", "p3"]),
        folds=obj(["s0/f0", "s0/f1", "s1/f0", "s1/f1", "s1/f1"]),
    )
    headers = keys.headers()
    with transaction(session_factory) as session:
        evaluation = store_evaluation(
            session,
            settings,
            organisation_id=organisation_id(session_factory),
            kind="audit",
            name="pooled",
            predictions=predictions,
            report={},
            rows=[],
            metric_definition_version="1.0",
            config={},
        )
        evaluation_id = evaluation.id
    table = rows(client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=headers))
    assert list(table[0])[-5:] == ["exit_taken", "policy_score", "threshold", "seed", "fold"]
    assert [float(r["threshold"]) for r in table] == [0.5, 0.5, 0.4, 0.6, 0.6]
    assert [r["sex"] for r in table] == ["female", "", "male", "female", "male"]
    assert [r["exit_taken"] for r in table] == ["0", "2", "1", "2", "0"]
    assert [float(r["policy_score"]) for r in table] == [0.1, 0.7, 0.5, 0.9, 0.5]
    assert [float(r["score_exit_1"]) for r in table] == [0.2, 0.8, 0.5, 0.3, 0.5]
    assert [(r["seed"], r["fold"]) for r in table] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1"), ("1", "1")]
    patients = [r["patient"] for r in table]
    assert patients[0] == patients[1] != patients[2] and patients[3] == patients[4]
    assert patients[0] == patient_hash(evaluation_id, "p1") and "p1" not in patients


def streaming_peak(folder, n: int, exits: int = 5) -> int:
    """Peak traced memory while streaming the CSV of ``n`` stored random predictions."""
    rng = np.random.default_rng(0)
    save_predictions(
        folder,
        PredictionSet(
            y_true=rng.integers(0, 2, n),
            exit_scores=rng.random((n, exits)),
            groups={"site": obj(list(rng.choice(["a", "b"], n)))},
            threshold=0.5,
            exit_index=rng.integers(0, exits, n),
            exit_cost=np.linspace(0.2, 1.0, exits),
            sample_ids=np.array([f"s{i}" for i in range(n)], dtype=object),
        ),
    )
    tracemalloc.start()
    try:
        lines = sum(chunk.count(b"\n") for chunk in PredictionsCsv(folder, "key"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == n + 1
    return peak


def test_streaming_memory_does_not_grow_with_the_predictions(tmp_path):
    small, large = streaming_peak(tmp_path / "small", 40_000), streaming_peak(tmp_path / "large", 200_000)
    assert large < 1.25 * small, f"peak {large:,} bytes for 200k rows against {small:,} for 40k"
    assert large < 200_000 * 5 * 8, "less than the exit scores alone would take in memory"


def test_evaluation_without_stored_predictions_is_409(client, keys, settings):
    headers = keys.headers()
    evaluation_id = post_audit(client, headers, predictions_csv(n=40)).json()["id"]
    (evaluation_dir(settings, evaluation_id) / "predictions.npz").unlink()
    response = client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=headers)
    assert response.status_code == 409 and "no stored predictions" in response.json()["detail"]


def test_multi_exit_class_and_finding_predictions_as_csv(tmp_path, monkeypatch):
    """Every exit's class probabilities, the exit taken and the decision; per finding label, score,
    threshold (a pooled sample's own) and decision, in chunks."""
    monkeypatch.setattr(module, "CHUNK_ROWS", 2)
    probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]], [[0.2, 0.2, 0.6], [0.3, 0.3, 0.4]], [[0.4, 0.5, 0.1]] * 2])
    classes = MulticlassPredictionSet(
        y_true=np.array([1, 2, 0]),
        exit_probs=probs,
        classes=("a", "b", "c"),
        groups={"sex": obj(["F", "M", None])},
        exit_index=np.array([1, 0, 1]),
        exit_cost=np.array([0.5, 1.0]),
    )
    save_predictions(tmp_path / "classes", classes)
    table = list(csv.DictReader(io.StringIO(b"".join(PredictionsCsv(tmp_path / "classes", "k")).decode())))
    assert [c for c in table[0] if c.startswith("score_exit_1_")] == [
        "score_exit_1_a",
        "score_exit_1_b",
        "score_exit_1_c",
    ]
    assert [r["label"] for r in table] == ["b", "c", "a"] and [r["exit_taken"] for r in table] == ["1", "0", "1"]
    assert [r["score_b"] for r in table] == ["0.8", "0.2", "0.5"]
    assert [r["predicted"] for r in table] == ["b", "c", "b"] and table[2]["sex"] == ""

    findings = MultilabelPredictionSet(
        y_true=np.array([[1, -1], [0, 1], [-1, 0]]),
        exit_scores=np.array([[[0.9, 0.2]], [[0.1, 0.7]], [[0.4, 0.3]]]),
        findings=("edema", "effusion"),
        groups={},
        thresholds=np.array([[0.5, 0.4], [0.5, 0.4], [0.3, 0.3]]),  # pooled: each sample its fold model's
        folds=obj(["s0/f0", "s0/f0", "s1/f1"]),
    )
    save_predictions(tmp_path / "findings", findings)
    table = list(csv.DictReader(io.StringIO(b"".join(PredictionsCsv(tmp_path / "findings", "k")).decode())))
    assert [(r["label_edema"], r["label_effusion"]) for r in table] == [("1", ""), ("0", "1"), ("", "0")]
    assert [r["threshold_edema"] for r in table] == ["0.5", "0.5", "0.3"]
    assert [(r["decision_edema"], r["decision_effusion"]) for r in table] == [("1", "0"), ("0", "1"), ("1", "1")]
    assert [(r["seed"], r["fold"]) for r in table] == [("0", "0"), ("0", "0"), ("1", "1")]
