"""Audits of multi-class and multi-label predictions over HTTP: reports, stored rows, the predictions
download, the audit job, comparisons, and every bad input named by row or column with nothing kept."""

from __future__ import annotations

import csv
import io

import numpy as np
from audit_helpers import post_audit, predictions_csv
from class_audit_helpers import (
    CLASSES,
    FINDINGS,
    MULTICLASS_CONFIG,
    MULTILABEL_CONFIG,
    multiclass_csv,
    multilabel_csv,
)
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.fairness import service
from app.fairness.models import Evaluation, MetricRow
from app.fairness.schemas import EvaluationOut
from app.main import create_app


def policy_grouping(report: dict, attribute: str) -> dict:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    return next(g for g in policy["groupings"] if g["attribute"] == attribute)


def download(client, headers, evaluation_id: str) -> list[dict[str, str]]:
    response = client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=headers)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_multiclass_audit_reports_class_gaps_and_downloads_its_decisions(client, keys, session_factory):
    headers = keys.headers()
    uploaded = multiclass_csv()
    response = post_audit(client, headers, uploaded, MULTICLASS_CONFIG)
    assert response.status_code == 201, response.json()
    body = response.json()
    report = body["report"]
    assert report["task"] == "multiclass" and report["classes"] == list(CLASSES)
    assert report["config"]["decision"] == "argmax" and report["config"]["threshold_source"] == "argmax"
    assert sum(report["population"]["class_counts"].values()) == 300
    skin = policy_grouping(report, "skin")
    eopp1 = skin["gaps"]["eopp1"]
    assert eopp1["status"] == "ok" and eopp1["ci_low"] <= eopp1["value"] <= eopp1["ci_high"]
    assert eopp1["value"] > 0.1, "the planted skin-type gap must show"
    dark = next(g for g in skin["groups"] if g["group"] == "V-VI")
    light = next(g for g in skin["groups"] if g["group"] == "I-II")
    assert dark["metrics"]["accuracy"]["value"] < light["metrics"]["accuracy"]["value"]
    assert len(dark["confusion"]) == 3 and sum(map(sum, dark["confusion"])) == dark["n"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(MetricRow.evaluation_id == body["id"])) > 100
    assert client.get(f"/v1/evaluations/{body['id']}", headers=headers).json()["report"] == report

    table = download(client, headers, body["id"])
    assert list(table[0])[:4] == ["sample_id", "patient", "skin", "label"]
    assert [c for c in table[0] if c.startswith("score_") and "exit" not in c] == [f"score_{c}" for c in CLASSES]
    original = list(csv.DictReader(io.StringIO(uploaded)))
    for mine, theirs in zip(table, original, strict=True):
        assert mine["label"] == theirs["y_true"] and mine["exit_taken"] == "0"
        probs = [float(theirs[f"score_{c}"]) for c in CLASSES]
        assert [float(mine[f"score_{c}"]) for c in CLASSES] == probs
        assert mine["predicted"] == CLASSES[int(np.argmax(probs))]


def test_multiclass_class_thresholds_decide_and_are_recorded(client, keys):
    headers = keys.headers()
    config = {**MULTICLASS_CONFIG, "class_thresholds": {"benign": 0.9, "melanoma": 0.1, "nevus": 0.9}}
    response = post_audit(client, headers, multiclass_csv(n=120), config)
    assert response.status_code == 201, response.json()
    report = response.json()["report"]
    assert report["config"]["decision"] == "argmax of p / class threshold"
    assert report["config"]["class_thresholds"] == [0.9, 0.1, 0.9]
    table = download(client, headers, response.json()["id"])
    assert [table[0][f"threshold_{c}"] for c in CLASSES] == ["0.9", "0.1", "0.9"]
    predicted = [row["predicted"] for row in table]
    assert predicted.count("melanoma") > len(table) * 0.5, "a low melanoma threshold favours it"


def test_multilabel_audit_fits_a_threshold_per_finding(client, keys, session_factory):
    headers = keys.headers()
    response = post_audit(client, headers, multilabel_csv(), MULTILABEL_CONFIG)
    assert response.status_code == 201, response.json()
    body = response.json()
    report = body["report"]
    assert report["task"] == "multilabel" and report["findings"] == list(FINDINGS)
    counts = report["population"]["per_finding"]
    assert all(c["n_unknown"] > 0 and c["n"] + c["n_unknown"] == 300 for c in counts.values())
    for finding in FINDINGS:
        config = report["per_finding"][finding]["config"]
        assert config["threshold_source"] == "youden fitted per finding on the audited data (optimistic)"
        assert config["threshold_rule"]["rule"] == "youden"
        assert body["config"]["thresholds"][finding] == config["threshold"]
        pfd = policy_grouping(report["per_finding"][finding], "skin")["gaps"]["pfd"]
        assert pfd["status"] == "ok" and pfd["value"] > 0.05
    assert [row["finding"] for row in report["summary"]] == list(FINDINGS)
    assert body["config"]["attributes"] == ["skin"] and body["config"]["task"] == "multilabel"
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(MetricRow.evaluation_id == body["id"])) > 100

    table = download(client, headers, body["id"])
    row = next(r for r in table if r["label_edema"] == "")
    assert row["label_effusion"] in ("0", "1"), "an unknown finding is blank, the other known"
    for r in table:
        for finding in FINDINGS:
            threshold = float(r[f"threshold_{finding}"])
            assert threshold == body["config"]["thresholds"][finding]
            assert r[f"decision_{finding}"] == str(int(float(r[f"score_{finding}"]) >= threshold))


def test_multilabel_given_thresholds_per_finding_and_for_all(client, keys):
    headers = keys.headers()
    base = {k: v for k, v in MULTILABEL_CONFIG.items() if k != "threshold_rule"}
    given = post_audit(
        client, headers, multilabel_csv(120), {**base, "finding_thresholds": {"edema": 0.3, "effusion": 0.7}}
    )
    assert given.status_code == 201, given.json()
    assert given.json()["config"]["thresholds"] == {"edema": 0.3, "effusion": 0.7}
    same = post_audit(client, headers, multilabel_csv(120), {**base, "threshold": 0.4})
    assert same.json()["config"]["thresholds"] == {"edema": 0.4, "effusion": 0.4}


def test_large_multiclass_and_multilabel_audit_jobs_give_the_same_reports(settings, keys, run_jobs, client):
    headers = keys.headers()
    uploads = [(multiclass_csv(n=150), MULTICLASS_CONFIG), (multilabel_csv(n=150), MULTILABEL_CONFIG)]
    inline = [post_audit(client, headers, text, config).json() for text, config in uploads]
    small = settings.model_copy(update={"audit_sync_max_rows": 100})
    with TestClient(create_app(small, run_supervisor=False)) as job_client:
        queued = [post_audit(job_client, headers, text, config) for text, config in uploads]
    assert [q.status_code for q in queued] == [202, 202], [q.json() for q in queued]
    run_jobs()
    for done_now, later in zip(inline, queued, strict=True):
        done = client.get(f"/v1/evaluations/{later.json()['id']}", headers=headers).json()
        assert done["status"] == "ready"
        assert done["report"] == done_now["report"] and done["config"] == done_now["config"]
    edema = inline[1]["report"]["per_finding"]["edema"]["config"]
    assert edema["threshold_rule"]["rule"] == "youden", "the job keeps each finding's fitted rule"


def test_evaluations_of_different_tasks_are_not_compared(client, keys):
    headers = keys.headers()
    binary = post_audit(client, headers, predictions_csv(n=100)).json()["id"]
    multiclass = post_audit(client, headers, multiclass_csv(n=100), MULTICLASS_CONFIG).json()["id"]
    response = client.post("/v1/compare", headers=headers, json={"evaluation_ids": [multiclass, binary]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert multiclass in detail and binary in detail and "multiclass (3 classes" in detail and "is binary" in detail


def _rows(header: str, *lines: str) -> str:
    return "\n".join([header, *lines]) + "\n"


MC_HEADER = "y_true,score_benign,score_melanoma,score_nevus,skin"
ML_HEADER = "y_true_edema,y_true_effusion,score_edema,score_effusion,skin"
GOOD_MC = ("benign,0.7,0.2,0.1,I-II", "nevus,0.1,0.2,0.7,V-VI")
GOOD_ML = ("1,0,0.8,0.1,I-II", "0,,0.2,0.5,V-VI")


def test_bad_multiclass_and_multilabel_input_is_named_and_nothing_is_kept(client, keys, session_factory, settings):
    headers = keys.headers()
    classes = {**MULTICLASS_CONFIG, "classes": list(CLASSES)}
    cases = {
        "a class's score column missing": (
            _rows("y_true,score_benign,score_melanoma,skin", "benign,0.7,0.3,I-II", "melanoma,0.2,0.8,V-VI"),
            classes,
            {"column": "score_nevus"},
        ),
        "a label outside the classes": (
            _rows(MC_HEADER, *GOOD_MC, "bcc,0.3,0.3,0.4,I-II"),
            MULTICLASS_CONFIG,
            {"row": 4, "column": "y_true"},
        ),
        "scores that do not sum to 1": (
            _rows(MC_HEADER, *GOOD_MC, "benign,0.5,0.3,0.1,I-II", "benign,0.5,0.4,0.2,I-II"),
            MULTICLASS_CONFIG,
            {"row": 4, "column": "score_*"},
        ),
        "a score outside [0, 1]": (
            _rows(MC_HEADER, *GOOD_MC, "benign,1.2,-0.1,-0.1,I-II"),
            MULTICLASS_CONFIG,
            {"row": 4, "column": "score_benign"},
        ),
        "a NaN score": (
            _rows(MC_HEADER, *GOOD_MC, "benign,nan,0.5,0.5,I-II"),
            MULTICLASS_CONFIG,
            {"row": 4, "column": "score_benign"},
        ),
        "K = 1 in the file": (
            _rows("y_true,score_benign,skin", "benign,1.0,I-II", "benign,1.0,V-VI"),
            MULTICLASS_CONFIG,
            {"column": "score_<class>"},
        ),
        "K = 1 in the config": (
            _rows(MC_HEADER, *GOOD_MC),
            {**MULTICLASS_CONFIG, "classes": ["benign"]},
            {"field": "classes"},
        ),
        "a score column of an unlisted class": (
            _rows(MC_HEADER, *GOOD_MC),
            {**MULTICLASS_CONFIG, "classes": ["benign", "melanoma"]},
            {"column": "score_nevus"},
        ),
        "class thresholds missing a class": (
            _rows(MC_HEADER, *GOOD_MC),
            {**MULTICLASS_CONFIG, "class_thresholds": {"benign": 0.5, "melanoma": 0.5}},
            {"field": "class_thresholds.nevus"},
        ),
        "a threshold for a multiclass audit": (
            _rows(MC_HEADER, *GOOD_MC),
            {**MULTICLASS_CONFIG, "threshold": 0.5},
            {"field": "threshold"},
        ),
        "a row with every finding unknown": (
            _rows(ML_HEADER, *GOOD_ML, ",,0.3,0.4,I-II"),
            MULTILABEL_CONFIG,
            {"row": 4, "column": "y_true_*"},
        ),
        "a finding's score column missing": (
            _rows("y_true_edema,y_true_effusion,score_edema,skin", "1,0,0.8,I-II", "0,1,0.2,V-VI"),
            MULTILABEL_CONFIG,
            {"column": "score_effusion"},
        ),
        "a finding label that is not 0, 1 or blank": (
            _rows(ML_HEADER, *GOOD_ML, "2,0,0.3,0.4,I-II"),
            MULTILABEL_CONFIG,
            {"row": 4, "column": "y_true_edema"},
        ),
        "a rule on a finding with one class": (
            _rows(ML_HEADER, "1,0,0.8,0.1,I-II", "1,1,0.2,0.5,V-VI"),
            MULTILABEL_CONFIG,
            {"column": "y_true_edema"},
        ),
    }
    for name, (text, config, named) in cases.items():
        response = post_audit(client, headers, text, config)
        assert response.status_code == 422, (name, response.json())
        errors = response.json().get("errors", [])
        assert any(named.items() <= e.items() for e in errors), (name, response.json())
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == 0
    folder = settings.data_dir / "evaluations"
    assert not folder.exists() or not any(folder.iterdir())


def test_two_multiclass_evaluations_compare_paired_and_other_classes_are_refused(client, keys):
    headers = keys.headers()
    biased = post_audit(client, headers, multiclass_csv(n=300, seed=4, bias=1.5), MULTICLASS_CONFIG).json()["id"]
    fair = post_audit(client, headers, multiclass_csv(n=300, seed=4, bias=0.0), MULTICLASS_CONFIG).json()["id"]
    response = client.post("/v1/compare", headers=headers, json={"evaluation_ids": [biased, fair], "n_boot": 200})
    assert response.status_code == 200, response.json()
    pair = response.json()["comparisons"][0]
    assert response.json()["n_matched"] == 300
    eopp1 = next(d for d in pair["differences"] if (d["attribute"], d["metric"]) == ("skin", "class_mean_eopp1"))
    assert eopp1["difference"] < 0 and eopp1["ci_high"] < 0, "the fair model's class-mean Eopp1 gap is smaller"
    accuracy = next(d for d in pair["differences"] if (d["attribute"], d["metric"]) == ("overall", "accuracy"))
    assert accuracy["difference"] > 0

    renamed = multiclass_csv(n=300, seed=4).replace("nevus", "mole")  # the header's class and the labels
    other = post_audit(client, headers, renamed, MULTICLASS_CONFIG)
    assert other.status_code == 201, other.json()
    refused = client.post("/v1/compare", headers=headers, json={"evaluation_ids": [biased, other.json()["id"]]})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert biased in detail and other.json()["id"] in detail and "benign, melanoma, mole" in detail


def test_report_metadata_names_the_multiclass_decision(client, keys, session_factory):
    """The header of a report page: a multiclass evaluation decides by a rule, not one threshold."""
    config = {**MULTICLASS_CONFIG, "class_thresholds": {"benign": 0.5, "melanoma": 0.25, "nevus": 0.5}}
    body = post_audit(client, keys.headers(), multiclass_csv(n=120), config).json()
    with session_factory() as session:
        meta = service.report_metadata(session, EvaluationOut.model_validate(body))
    assert meta["decision"] == "argmax of p / class threshold" and meta["class thresholds"] == [0.5, 0.25, 0.5]
    assert "operating threshold" not in meta and meta["cohort"] == "uploaded predictions"


def test_the_evaluation_list_names_each_evaluations_task(client, keys):
    headers = keys.headers(org="task list")
    made = {
        "binary": post_audit(client, headers, predictions_csv(120)).json()["id"],
        "multiclass": post_audit(client, headers, multiclass_csv(), MULTICLASS_CONFIG).json()["id"],
        "multilabel": post_audit(client, headers, multilabel_csv(), MULTILABEL_CONFIG).json()["id"],
    }
    listed = client.get("/v1/evaluations", headers=headers)
    assert listed.status_code == 200, listed.json()
    tasks = {item["id"]: item["task"] for item in listed.json()["items"]}
    assert tasks == {evaluation_id: task for task, evaluation_id in made.items()}
