"""``GET /v1/evaluations/{id}/metrics``: the stored metric rows of a report, filtered and paginated,
on both databases (they were written for every report and read by nothing)."""

from __future__ import annotations

from audit_helpers import post_audit, predictions_csv
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.fairness.models import MetricRow
from app.main import create_app


def test_metric_rows_page_through_every_stored_row_in_report_order(client, keys, session_factory) -> None:
    headers = keys.headers()
    evaluation = post_audit(client, headers, predictions_csv()).json()["id"]
    seen, cursor, pages = [], None, 0
    while pages < 100:  # bounded: the report has a few hundred rows
        query = f"?limit=200&cursor={cursor}" if cursor else "?limit=200"
        page = client.get(f"/v1/evaluations/{evaluation}/metrics{query}", headers=headers).json()
        seen += page["items"]
        pages, cursor = pages + 1, page["next_cursor"]
        if cursor is None:
            break
    with session_factory() as session:
        stored = session.scalar(select(func.count()).where(MetricRow.evaluation_id == evaluation))
    assert pages > 1 and len(seen) == stored
    assert len({(r["attribute"], r["group"], r["exit"], r["metric"]) for r in seen}) == stored
    assert seen[0] == {**seen[0], "attribute": "overall", "metric": "n"}  # the report's own order


def test_filters_select_the_reports_values(client, keys) -> None:
    headers = keys.headers()
    body = post_audit(client, headers, predictions_csv()).json()
    policy = next(e for e in body["report"]["evaluations"] if e["exit"] == "policy")
    sex = next(g for g in policy["groupings"] if g["attribute"] == "sex")
    url = f"/v1/evaluations/{body['id']}/metrics"

    aucs = client.get(f"{url}?attribute=sex&metric=auc&exit=policy", headers=headers).json()
    expected = {g["group"]: g["metrics"]["auc"] for g in sex["groups"]}
    assert aucs["next_cursor"] is None
    assert {r["group"]: {k: r[k] for k in ("value", "ci_low", "ci_high", "status", "n")} for r in aucs["items"]} == {
        group: {k: auc[k] for k in ("value", "ci_low", "ci_high", "status", "n")} for group, auc in expected.items()
    }
    gap = client.get(f"{url}?attribute=sex&group=*&metric=pfd&exit=policy", headers=headers).json()["items"]
    assert [(r["value"], r["ci_low"], r["ci_high"]) for r in gap] == [
        (sex["gaps"]["pfd"]["value"], sex["gaps"]["pfd"]["ci_low"], sex["gaps"]["pfd"]["ci_high"])
    ]
    assert client.get(f"{url}?metric=no-such-metric", headers=headers).json() == {"items": [], "next_cursor": None}


def test_bad_requests_are_named(client, keys, settings) -> None:
    headers = keys.headers()
    evaluation = post_audit(client, headers, predictions_csv(100)).json()["id"]
    url = f"/v1/evaluations/{evaluation}/metrics"
    for limit in (0, 201):
        response = client.get(f"{url}?limit={limit}", headers=headers)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "query.limit"
    for cursor, reason in (("garbage", "not a cursor"), ("WyJ4Il0", "not a row number")):  # WyJ4Il0: ["x"]
        response = client.get(f"{url}?cursor={cursor}", headers=headers)
        assert response.status_code == 400 and reason in response.json()["errors"][0]["message"]
    assert client.get(url, headers=keys.headers(org="Elsewhere General")).status_code == 404
    assert client.get(url, headers=keys.headers("predictor")).status_code == 403
    small = settings.model_copy(update={"audit_sync_max_rows": 10})
    with TestClient(create_app(small, run_supervisor=False)) as job_client:
        running = post_audit(job_client, headers, predictions_csv(50)).json()["id"]
    waiting = client.get(f"/v1/evaluations/{running}/metrics", headers=headers)
    assert waiting.status_code == 409 and "no report yet (running)" in waiting.json()["detail"]
