"""Outcomes of multiclass and multilabel predictions (a class name, findings; values the model does not
know are refused by name and change nothing) and live monitoring per class and per finding."""

from __future__ import annotations

import numpy as np
import pytest
from class_models import write_class_model
from monitoring_helpers import recount, stored_cells
from serving_helpers import insert_model, model_columns, multipart, noise_images

from app.modelpkg.manifest import Decision
from app.modelpkg.task import Task
from app.serving.models import Prediction

CLASSES = ["nevus", "melanoma", "keratosis"]
FINDINGS = ["effusion", "oedema", "cardiomegaly"]
SKIN = ["I-II", "V-VI", None]


@pytest.fixture
def settings(settings):
    """Small groups count (two outcomes), so a few dozen predictions give ok rates and gaps."""
    return settings.model_copy(update={"min_group_count": 2})


def _predict(client, headers, model_id: str, batches: int) -> list[dict]:
    out = []
    for b in range(batches):
        demographics = [{"skin_type": SKIN[(b + k) % 3]} if SKIN[(b + k) % 3] else None for k in range(8)]
        response = client.post(
            f"/v1/models/{model_id}/predict", headers=headers, **multipart(noise_images(8, seed=20 + b), demographics)
        )
        assert response.status_code == 200, response.json()
        out += [
            {**p, "group": d and d["skin_type"]}
            for p, d in zip(response.json()["predictions"], demographics, strict=True)
        ]
    return out


def _refused(client, headers, prediction_id: str, body: dict, words: str) -> None:
    response = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=headers, json=body)
    assert response.status_code == 422, response.json()
    assert words in str(response.json()), response.json()


def _grouping(groupings: list[dict], attribute: str) -> dict:
    return next(g for g in groupings if g["attribute"] == attribute)


def test_multiclass_outcomes_and_monitoring_per_class(client, keys, settings, session_factory, tmp_path):
    model = write_class_model(
        tmp_path / "skin",
        Task(kind="multiclass", classes=CLASSES),
        Decision(rule="argmax", thresholds=None),
        exit_theta=0.9,
        scale=1.0,
    )
    insert_model(session_factory, settings, model.folder, model_columns(model.folder, "mdl_skin"))
    predictor, reader = keys.headers(role="predictor"), keys.headers()
    served = _predict(client, predictor, "mdl_skin", batches=3)
    before = client.get("/v1/models/mdl_skin/monitoring", headers=reader).json()
    assert before["task"] == "multiclass" and before["classes"] == CLASSES
    assert (before["status"], before["class_metrics"], before["n_predictions"]) == ("no_outcomes", None, 24)

    first = served[0]["id"]
    _refused(client, predictor, first, {"outcome": "psoriasis"}, "'psoriasis' is not a class of this model")
    _refused(client, predictor, first, {"outcome": 1}, "outcome is a class name (nevus, melanoma, keratosis), not 1")
    _refused(client, predictor, first, {"findings": {"nevus": 1}}, "body.outcome")
    with session_factory() as session:
        assert session.get(Prediction, first).outcome is None, "a refused outcome changes nothing"

    truth = [CLASSES[k % 3] for k in range(len(served))]
    for p, true in zip(served, truth, strict=True):
        response = client.post(f"/v1/predictions/{p['id']}/outcome", headers=predictor, json={"outcome": true})
        assert response.status_code == 200, response.json()
        record = response.json()
        assert record["task"] == "multiclass" and record["outcome_class"] == true
        assert record["outcome"] == CLASSES.index(true) and record["predicted_class"] == p["predicted_class"]
    truth[0] = CLASSES[(CLASSES.index(truth[0]) + 1) % 3]  # a correction moves the outcome's counts
    assert (
        client.post(f"/v1/predictions/{first}/outcome", headers=predictor, json={"outcome": truth[0]}).status_code
        == 200
    )
    assert stored_cells(session_factory, "mdl_skin") == recount(session_factory, "mdl_skin")

    after = client.get("/v1/models/mdl_skin/monitoring", headers=reader).json()
    assert after["status"] == "ok" and after["n_with_outcome"] == 24 and after["metrics"] is None
    predicted = np.array([CLASSES.index(p["predicted_class"]) for p in served])
    true = np.array([CLASSES.index(t) for t in truth])
    groups = np.array([p["group"] for p in served], dtype=object)
    skin = _grouping(after["class_metrics"], "skin_type")
    assert skin["n_missing"] == int((groups == None).sum())  # noqa: E711 (an object array)
    for entry in skin["groups"]:
        members = groups == entry["group"]
        assert entry["n"] == members.sum()
        accuracy = entry["metrics"]["accuracy"]
        assert accuracy["value"] == (predicted[members] == true[members]).mean()
        assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
        for c, name in enumerate(CLASSES):
            rates = entry["classes"][name]
            positives = members & (true == c)
            assert rates["n_pos"] == positives.sum() and rates["n_neg"] == (members & (true != c)).sum()
            tpr = rates["metrics"]["tpr"]
            if positives.any():
                assert tpr["value"] == (predicted[positives] == c).mean() and tpr["n"] == positives.sum()
            assert set(rates["metrics"]) == {"prevalence", "tpr", "fpr", "tnr", "fnr", "ppv", "npv", "selection_rate"}
    assert set(skin["gaps"]) == {"eopp0", "eopp1", "eodd"} and set(skin["class_gaps"]) == set(CLASSES)
    for name, gap in skin["gaps"].items():  # the paper's multi-class gap: the mean of the classes' gaps
        used = gap["classes_used"]
        assert used and sorted(used + gap["classes_left_out"]) == sorted(CLASSES)
        assert gap["value"] == pytest.approx(np.mean([skin["class_gaps"][c][name]["value"] for c in used]))
    eopp1 = skin["class_gaps"][CLASSES[0]]["eopp1"]
    tprs = [g["classes"][CLASSES[0]]["metrics"]["tpr"]["value"] for g in skin["groups"]]
    assert eopp1["status"] == "ok" and eopp1["value"] == pytest.approx(max(tprs) - min(tprs))


def test_multilabel_outcomes_and_monitoring_per_finding(client, keys, settings, session_factory, tmp_path):
    model = write_class_model(
        tmp_path / "cxr",
        Task(kind="multilabel", classes=FINDINGS),
        Decision(rule="per-finding threshold", thresholds=[0.3, 0.5, 0.7]),
        exit_theta=0.75,
        scale=2.0,
    )
    insert_model(session_factory, settings, model.folder, model_columns(model.folder, "mdl_cxr"))
    predictor, reader = keys.headers(role="predictor"), keys.headers()
    served = _predict(client, predictor, "mdl_cxr", batches=2)
    first = served[0]["id"]
    _refused(client, predictor, first, {"findings": {"pneumothorax": 1}}, "'pneumothorax' not a finding of this model")
    _refused(client, predictor, first, {"findings": {"effusion": None}}, "every finding is unknown")
    _refused(client, predictor, first, {"findings": {"effusion": 2}}, "findings")
    _refused(client, predictor, first, {"outcome": 1}, "body.findings")
    with session_factory() as session:
        assert session.get(Prediction, first).outcome_findings is None

    truths = []
    for k, p in enumerate(served):
        findings = {"effusion": k % 2, "cardiomegaly": int(k % 3 == 0)}
        if k % 4 == 0:
            findings["oedema"] = 1
        response = client.post(f"/v1/predictions/{p['id']}/outcome", headers=predictor, json={"findings": findings})
        assert response.status_code == 200, response.json()
        record = response.json()
        assert record["outcome_findings"] == {f: findings.get(f) for f in FINDINGS}
        assert record["outcome"] == int(any(findings.values()))
        truths.append(findings)
    assert stored_cells(session_factory, "mdl_cxr") == recount(session_factory, "mdl_cxr")
    with session_factory() as session:
        row = session.get(Prediction, served[1]["id"])
        assert row.outcome_findings == [1, None, 0]

    body = client.get("/v1/models/mdl_cxr/monitoring", headers=reader).json()
    assert body["task"] == "multilabel" and body["n_with_outcome"] == 16 and body["metrics"] is None
    by_finding = {f["finding"]: f for f in body["finding_metrics"]}
    assert list(by_finding) == FINDINGS
    assert by_finding["oedema"]["n_with_outcome"] == 4 and by_finding["effusion"]["n_with_outcome"] == 16
    for name in FINDINGS:
        known = [k for k, t in enumerate(truths) if name in t]
        y = np.array([truths[k][name] for k in known])
        decided = np.array([served[k]["findings"][name]["decision"] for k in known])
        overall = _grouping(by_finding[name]["metrics"], "overall")["groups"][0]
        assert (overall["n"], overall["n_pos"]) == (len(known), int(y.sum()))
        if y.any():
            assert overall["metrics"]["tpr"]["value"] == decided[y == 1].mean()
        if y.any() and not y.all():
            assert overall["metrics"]["auc"]["value"] is not None
