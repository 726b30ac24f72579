"""Audits of external predictions, reports and comparisons over HTTP, on both databases."""

from __future__ import annotations

import json

from audit_helpers import post_audit, predictions_csv
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.fairness.models import Evaluation, MetricRow
from app.main import create_app


def test_audit_produces_a_stored_report_with_intervals(client, keys, session_factory):
    headers = keys.headers()
    response = post_audit(client, headers, predictions_csv())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "audit" and body["status"] == "ready"
    policy = next(e for e in body["report"]["evaluations"] if e["exit"] == "policy")
    sex = next(g for g in policy["groupings"] if g["attribute"] == "sex")
    pfd = sex["gaps"]["pfd"]
    assert pfd["status"] == "ok" and pfd["ci_low"] <= pfd["value"] <= pfd["ci_high"]
    assert pfd["value"] > 0.05, "the planted gap between men and women must show"
    female = next(g for g in sex["groups"] if g["group"] == "female")
    assert (
        female["metrics"]["tpr"]["ci_low"] <= female["metrics"]["tpr"]["value"] <= female["metrics"]["tpr"]["ci_high"]
    )
    assert body["report"]["summary"]["verdict"]
    with session_factory() as session:
        rows = session.scalar(select(func.count()).where(MetricRow.evaluation_id == body["id"]))
    assert rows > 100
    again = client.get(f"/v1/evaluations/{body['id']}", headers=headers).json()
    assert again["report"] == body["report"]


def test_html_report_and_model_card(client, keys):
    headers = keys.headers()
    evaluation_id = post_audit(client, headers, predictions_csv()).json()["id"]
    page = client.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<svg" in html and "female" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html, (
        "the report must open offline"
    )
    card = client.get(f"/v1/evaluations/{evaluation_id}/model-card", headers=headers).json()
    metrics = card["quantitative_analysis"]["performance_metrics"]
    assert any(m["slice"] == "sex=female" and "confidence_interval" in m for m in metrics)
    assert card["fairaudit"]["study_id"] is None and "/v1/studies/" not in html, "an audit belongs to no study"


def test_audit_bad_input_is_named(client, keys, session_factory):
    headers = keys.headers()
    good = predictions_csv(50, ids=False)
    cases = {
        "missing column": (good.replace("site", "hospital", 1), "site"),
        "score out of range": ("y_true,y_score,sex,site\n1,1.5,male,a\n0,0.4,female,b\n", "y_score"),
        "non-binary label": ("y_true,y_score,sex,site\n2,0.5,male,a\n0,0.4,female,b\n", "y_true"),
        "NaN score": ("y_true,y_score,sex,site\n1,nan,male,a\n0,0.4,female,b\n", "y_score"),
        "single row": ("y_true,y_score,sex,site\n1,0.5,male,a\n", "two rows"),
        "one group": ("y_true,y_score,sex,site\n1,0.5,male,a\n0,0.4,male,b\n", "sex"),
    }
    for name, (text, expected) in cases.items():
        response = post_audit(client, headers, text)
        assert response.status_code == 422, (name, response.json())
        assert response.headers["content-type"] == "application/problem+json"
        assert expected in json.dumps(response.json()), (name, response.json())
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == 0


def test_group_without_positives_gets_an_explicit_status_not_zero(client, keys):
    rows = ["y_true,y_score,sex,site"]
    rows += [f"{i % 2},{0.3 + 0.4 * (i % 2)},male,a" for i in range(60)]
    rows += [f"0,0.2,female,{'ab'[i % 2]}" for i in range(30)]  # women: no positives
    body = post_audit(client, keys.headers(), "\n".join(rows) + "\n").json()
    policy = next(e for e in body["report"]["evaluations"] if e["exit"] == "policy")
    sex = next(g for g in policy["groupings"] if g["attribute"] == "sex")
    female = next(g for g in sex["groups"] if g["group"] == "female")
    assert female["metrics"]["tpr"]["status"] == "undefined" and female["metrics"]["tpr"]["value"] is None
    assert any(left["group"] == "female" for left in sex["gaps"]["eopp1"]["left_out"])


def test_compare_pairs_evaluations_on_the_same_samples(client, keys):
    headers = keys.headers()
    first = post_audit(client, headers, predictions_csv(seed=1, bias=0.3)).json()["id"]
    same = post_audit(client, headers, predictions_csv(seed=1, bias=0.3)).json()["id"]
    fairer = post_audit(client, headers, predictions_csv(seed=1, bias=0.0)).json()["id"]
    result = client.post("/v1/compare", headers=headers, json={"evaluation_ids": [first, same, fairer], "n_boot": 200})
    assert result.status_code == 200, result.json()
    text = json.dumps(result.json())
    assert first in text and fairer in text
    other_org = client.post("/v1/compare", headers=keys.headers(org="other"), json={"evaluation_ids": [first, same]})
    assert other_org.status_code == 404


def test_large_audit_runs_as_a_job_with_the_same_report(settings, keys, session_factory, run_jobs, client):
    """Past ``audit_sync_max_rows`` the request only checks and stores the predictions (202); the
    job's report equals the one the request would have computed."""
    headers = keys.headers()
    text = predictions_csv(400)
    inline = post_audit(client, headers, text)
    assert inline.status_code == 201
    small = settings.model_copy(update={"audit_sync_max_rows": 399})
    with TestClient(create_app(small, run_supervisor=False)) as job_client:
        response = post_audit(job_client, headers, text)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "running" and body["report"] is None and body["job_id"]
    job = client.get(f"/v1/jobs/{body['job_id']}", headers=headers).json()
    assert job["kind"] == "audit" and job["status"] == "queued"
    assert client.get(f"/v1/evaluations/{body['id']}/report", headers=headers).status_code == 409
    run_jobs()
    done = client.get(f"/v1/evaluations/{body['id']}", headers=headers).json()
    assert done["status"] == "ready"
    assert done["report"] == inline.json()["report"]
    assert done["config"] == inline.json()["config"]
    with session_factory() as session:
        counts = [
            session.scalar(select(func.count()).where(MetricRow.evaluation_id == e))
            for e in (body["id"], inline.json()["id"])
        ]
    assert counts[0] == counts[1] > 100
    pair = {"evaluation_ids": [inline.json()["id"], body["id"]], "n_boot": 100}
    assert client.post("/v1/compare", headers=headers, json=pair).status_code == 200


def test_failed_audit_job_shows_a_failed_evaluation(settings, keys, run_jobs, client, session_factory):
    headers = keys.headers()
    small = settings.model_copy(update={"audit_sync_max_rows": 10})
    with TestClient(create_app(small, run_supervisor=False)) as job_client:
        body = post_audit(job_client, headers, predictions_csv(50)).json()
    (settings.data_dir / "evaluations" / body["id"] / "predictions.npz").unlink()  # the job cannot read them
    run_jobs()
    failed = client.get(f"/v1/evaluations/{body['id']}", headers=headers).json()
    assert failed["status"] == "failed" and "predictions.npz" in failed["error"]
    with session_factory() as session:  # the row itself says so (it once stayed "running", error unset)
        row = session.get(Evaluation, body["id"])
        assert (row.status, row.error) == ("failed", failed["error"])
    listed = client.get("/v1/evaluations", headers=headers).json()["items"]
    assert [(e["id"], e["status"]) for e in listed] == [(body["id"], "failed")]
    assert client.get(f"/v1/evaluations/{body['id']}/model-card", headers=headers).status_code == 409
    other = post_audit(client, headers, predictions_csv(50)).json()["id"]
    compared = client.post("/v1/compare", headers=headers, json={"evaluation_ids": [other, body["id"]]})
    assert compared.status_code == 409 and "failed" in compared.json()["detail"]


def test_audit_cells_are_bounded_and_named(client, keys, session_factory):
    """A cell over Python csv's 131,072-character limit answered 500."""
    headers = keys.headers()
    big = "y_true,y_score,sex,site\n1,0.5,male,a\n0,0.4,female," + "x" * 131_073 + "\n"
    response = post_audit(client, headers, big)
    assert response.status_code == 413
    assert response.json()["errors"] == [{"row": 3, "column": "site", "message": "131,073 characters"}]
    many = "sample_id,y_true,y_score,sex,site\n" + "".join(f"s{i % 500},2,0.5,male,a\n" for i in range(1000))
    response = post_audit(client, headers, many)
    body = response.json()
    assert response.status_code == 422
    assert body["detail"] == "the predictions file has 1,500 problem(s) (the first 200 listed)"
    assert body["errors"][:2] == [
        {"row": 2, "column": "y_true", "message": "'2' is not 0 or 1"},
        {"row": 3, "column": "y_true", "message": "'2' is not 0 or 1"},
    ]
    assert body["errors"][-1] == {"message": "and 1,300 more problem(s) not listed"}
    duplicate = "sample_id,y_true,y_score,sex,site\na,1,0.5,male,a\nb,0,0.4,female,b\na,0,0.3,female,c\n"
    assert post_audit(client, headers, duplicate).json()["errors"] == [
        {"row": 4, "column": "sample_id", "message": "'a' is also on row 2"}
    ]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == 0
