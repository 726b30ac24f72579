"""Real responses, with real data behind them, are the ones the OpenAPI document declares: the typed
fairness report, comparison and model card validate what the service computes, and the report served
through its model equals the one stored (nothing dropped, nothing added)."""

from __future__ import annotations

from api_document import assert_documented
from archives import make_zip, upload
from test_audits import post_audit, predictions_csv

from app.fairness.models import Evaluation


def test_evaluation_comparison_and_model_card_match_the_document(client, keys, session_factory):
    headers, app = keys.headers(), client.app
    audit = post_audit(client, headers, predictions_csv(seed=1, bias=0.3))
    assert audit.status_code == 201, audit.text
    assert_documented(app, "POST", "/v1/audits", audit)
    rule = {"name": "fitted", "sensitive_attributes": ["sex", "site"], "threshold_rule": "youden"}
    fitted = post_audit(client, headers, predictions_csv(seed=1, bias=0.0), rule)
    assert fitted.status_code == 201, fitted.text
    ids = [audit.json()["id"], fitted.json()["id"]]

    for evaluation_id in ids:
        got = client.get(f"/v1/evaluations/{evaluation_id}", headers=headers)
        assert_documented(app, "GET", "/v1/evaluations/{evaluation_id}", got)
        with session_factory() as session:
            stored = session.get(Evaluation, evaluation_id).report
        assert got.json()["report"] == stored
        for page in ("model-card", "report"):
            response = client.get(f"/v1/evaluations/{evaluation_id}/{page}", headers=headers)
            assert response.status_code == 200
            assert_documented(app, "GET", f"/v1/evaluations/{{evaluation_id}}/{page}", response)
    assert "threshold_source" in client.get(f"/v1/evaluations/{ids[1]}", headers=headers).json()["report"]["config"]

    comparison = client.post("/v1/compare", headers=headers, json={"evaluation_ids": ids, "n_boot": 100})
    assert comparison.status_code == 200, comparison.text
    assert_documented(app, "POST", "/v1/compare", comparison)
    listed = client.get("/v1/evaluations", params={"limit": 1}, headers=headers)
    assert listed.json()["next_cursor"]
    assert_documented(app, "GET", "/v1/evaluations", listed)


def test_cohort_job_and_problem_responses_match_the_document(client, keys):
    headers, app = keys.headers(), client.app
    cohort = upload(client, headers, make_zip(20))
    assert cohort.status_code == 202, cohort.text
    assert_documented(app, "POST", "/v1/cohorts", cohort)
    assert_documented(app, "GET", "/v1/cohorts", client.get("/v1/cohorts", headers=headers))
    assert_documented(app, "GET", "/v1/jobs", client.get("/v1/jobs", headers=headers))
    job = client.get(f"/v1/jobs/{cohort.json()['ingest_job_id']}", headers=headers)
    assert_documented(app, "GET", "/v1/jobs/{job_id}", job)
    busy = client.post(
        "/v1/jobs", headers=headers, json={"cohort_id": cohort.json()["id"], "sensitive_attributes": ["sex"]}
    )
    assert busy.status_code == 409  # still ingesting
    assert_documented(app, "POST", "/v1/jobs", busy)
    invalid = client.post("/v1/jobs", headers=headers, json={"cohort_id": "coh_x", "sensitive_attributes": [], "lr": 0})
    assert invalid.status_code == 422 and {e["field"] for e in invalid.json()["errors"]} == {
        "body.sensitive_attributes",
        "body.lr",
    }
    assert_documented(app, "POST", "/v1/jobs", invalid)
