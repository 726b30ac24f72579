"""Audits that fit their threshold with the new rules: target sensitivity and the group-constrained
rule, its record in the report, the HTML page and the model card, and its refusals."""

from __future__ import annotations

import pytest
from audit_helpers import post_audit, predictions_csv
from fastapi.testclient import TestClient

from app.main import create_app

BASE = {"name": "vendor model", "sensitive_attributes": ["sex", "site"]}
BAND = {"attribute": "sex", "fpr_band": 0.05, "tpr_band": 0.15, "min_tpr": 0.3, "min_group_count": 20}


def policy_groups(report: dict, attribute: str) -> list[dict]:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    return next(g for g in policy["groupings"] if g["attribute"] == attribute)["groups"]


def spread(groups: list[dict], metric: str) -> float:
    values = [g["metrics"][metric]["value"] for g in groups]
    return max(values) - min(values)


def test_constrained_audit_keeps_every_group_in_band_and_says_so(client, keys):
    headers = keys.headers()
    csv_text = predictions_csv(1200, bias=0.45)
    youden = post_audit(client, headers, csv_text, {**BASE, "threshold_rule": "youden"}).json()
    assert spread(policy_groups(youden["report"], "sex"), "tpr") > 0.15  # the planted gap, out of band
    response = post_audit(
        client, headers, csv_text, {**BASE, "threshold_rule": "constrained", "threshold_constraint": BAND}
    )
    assert response.status_code == 201, response.json()
    report = response.json()["report"]
    sex = policy_groups(report, "sex")
    assert spread(sex, "fpr") <= 0.05 + 1e-9 and spread(sex, "tpr") <= 0.15 + 1e-9  # the report's own numbers
    assert min(g["metrics"]["tpr"]["value"] for g in sex) >= 0.3
    record = report["config"]["threshold_rule"]
    assert record["rule"] == "constrained" and record["constraint_met"] is True and record["fallback"] is None
    assert record["chosen_on"] == "audited data" and record["constraint"]["fpr_band"] == 0.05
    point = record["operating_point"]
    assert point["grouped_by"] == ["sex"] and [g["held"] for g in point["groups"]] == [True, True]
    assert {g["group"]: g["fpr"] for g in point["groups"]} == pytest.approx(
        {g["group"]: g["metrics"]["fpr"]["value"] for g in sex}
    )
    assert 0 < point["thresholds_in_band"] < point["thresholds_examined"]
    assert report["config"]["threshold_source"] == "constrained fitted on the audited data (optimistic)"

    evaluation_id = response.json()["id"]
    html = client.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers).text
    assert "Operating point" in html and "best Youden&#39;s J with FPR spread ≤ 0.05" in html
    assert "across sex; band met, chosen on audited data" in html
    card = client.get(f"/v1/evaluations/{evaluation_id}/model-card", headers=headers).json()
    thresholds = card["fairaudit"]["thresholds"]
    assert thresholds["operating"] == report["config"]["threshold"] and thresholds["rule_record"] == record
    female = next(p for p in thresholds["operating_point"] if p["attribute"] == "sex" and p["group"] == "female")
    tpr = female["tpr"]
    assert tpr["ci_low"] <= tpr["value"] <= tpr["ci_high"] and tpr["status"] == "ok"


def test_an_impossible_band_is_refused_unless_youden_is_accepted(client, keys):
    headers = keys.headers()
    csv_text = predictions_csv(400)
    band = {"max_fpr": 0.01, "min_tpr": 0.99}
    refused = post_audit(
        client, headers, csv_text, {**BASE, "threshold_rule": "constrained", "threshold_constraint": band}
    )
    assert refused.status_code == 422, refused.json()
    [error] = refused.json()["errors"]
    assert error["field"] == "threshold_constraint" and "none of" in error["message"]
    accepted = post_audit(
        client,
        headers,
        csv_text,
        {**BASE, "threshold_rule": "constrained", "threshold_constraint": {**band, "on_infeasible": "youden"}},
    )
    assert accepted.status_code == 201, accepted.json()
    config = accepted.json()["report"]["config"]
    youden = post_audit(client, headers, csv_text, {**BASE, "threshold_rule": "youden"}).json()
    assert config["threshold"] == youden["report"]["config"]["threshold"]
    assert config["threshold_rule"]["constraint_met"] is False and config["threshold_rule"]["fallback"] == "youden"
    assert config["threshold_source"] == "youden (band of constrained not met) fitted on the audited data (optimistic)"
    html = client.get(f"/v1/evaluations/{accepted.json()['id']}/report", headers=headers).text
    assert "band NOT met: youden threshold taken" in html


def test_target_sensitivity_audit(client, keys):
    headers = keys.headers()
    response = post_audit(
        client,
        headers,
        predictions_csv(400),
        {**BASE, "threshold_rule": "target_sensitivity", "target_sensitivity": 0.9},
    )
    assert response.status_code == 201, response.json()
    report = response.json()["report"]
    assert report["summary"]["overall"]["tpr"]["value"] >= 0.9
    record = report["config"]["threshold_rule"]
    assert record["rule"] == "target_sensitivity" and record["target_sensitivity"] == 0.9
    assert record["operating_point"]["grouped_by"] == ["sex", "site"]  # no constraint: the intersection cells
    assert len(record["operating_point"]["groups"]) == 6


def test_bad_rule_configs_name_the_field(client, keys):
    headers = keys.headers()
    cases = {
        "target_sensitivity": {**BASE, "threshold_rule": "target_sensitivity"},
        "threshold_constraint": {**BASE, "threshold_rule": "youden", "threshold_constraint": {"fpr_band": 0.1}},
        "threshold_constraint.attribute": {
            **BASE,
            "threshold_rule": "constrained",
            "threshold_constraint": {"attribute": "age", "fpr_band": 0.1},
        },
        "threshold_constraint.fpr_band": {
            **BASE,
            "threshold_rule": "constrained",
            "threshold_constraint": {"fpr_band": 2},
        },
    }
    for field, config in cases.items():
        response = post_audit(client, headers, predictions_csv(50), config)
        assert response.status_code == 422, (field, response.json())
        assert field in [e.get("field") for e in response.json()["errors"]], (field, response.json())
    no_limit = post_audit(
        client, headers, predictions_csv(50), {**BASE, "threshold_rule": "constrained", "threshold_constraint": {}}
    )
    assert no_limit.status_code == 422
    assert no_limit.json()["errors"] == [
        {
            "field": "threshold_constraint",
            "message": "Value error, set at least one of fpr_band, tpr_band, max_fpr, min_tpr",
        }
    ]


def test_a_large_constrained_audit_job_records_the_same_choice(settings, keys, run_jobs, client):
    headers = keys.headers()
    text = predictions_csv(400)
    config = {**BASE, "threshold_rule": "constrained", "threshold_constraint": {**BAND, "min_tpr": None}}
    inline = post_audit(client, headers, text, config)
    assert inline.status_code == 201, inline.json()
    small = settings.model_copy(update={"audit_sync_max_rows": 399})
    with TestClient(create_app(small, run_supervisor=False)) as job_client:
        queued = post_audit(job_client, headers, text, config)
    assert queued.status_code == 202, queued.json()
    run_jobs()
    done = client.get(f"/v1/evaluations/{queued.json()['id']}", headers=headers).json()
    assert done["status"] == "ready"
    assert done["report"]["config"]["threshold_rule"] == inline.json()["report"]["config"]["threshold_rule"]
