"""The request lifecycle over HTTP on both databases: the key is checked before the body is read, the
session commits before the answer, GET routes read on read-only sessions, the job event stream, and the
limit on refused anonymous calls. (The same defects over a real socket: ``test_live_server_limits.py``.)"""

from __future__ import annotations

import json

from archives import make_zip, upload
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from job_helpers import finish, organisation_id, report, running_job
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from app.audit.models import AuditLogEntry
from app.auth.route import AuthenticatedRoute, required_permissions
from app.cohorts.models import Cohort
from app.core.deps import get_session
from app.core.refusals import RefusalLimiter
from app.main import create_app


def api_routes(routes: list) -> list[APIRoute]:
    """Every API route, including those of included routers (FastAPI keeps those in their router)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += api_routes(included.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def dependency_calls(route: APIRoute) -> set[object]:
    calls, pending = set(), [route.dependant]
    while pending:
        current = pending.pop()
        calls.add(current.call)
        pending.extend(current.dependencies)
    return calls


def test_every_keyed_route_authenticates_first_and_every_get_reads_only(settings) -> None:
    """One mechanism for every route: a route that names a permission is an ``AuthenticatedRoute``
    (it checks the key before FastAPI reads the body), and no GET route opens a write session."""
    routes = api_routes(create_app(settings, run_supervisor=False).routes)
    keyed = [r for r in routes if required_permissions(r.dependant) is not None]
    assert len(keyed) >= 25
    assert [r.path for r in keyed if not isinstance(r, AuthenticatedRoute)] == []
    assert [r.path for r in routes if "GET" in r.methods and get_session in dependency_calls(r)] == []


def test_key_and_role_are_checked_before_the_body(client: TestClient, keys) -> None:
    """Before the fix FastAPI parsed the body first: a keyless malformed JSON body got 422, a predictor's
    malformed upload 400."""
    keyless = client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert keyless.status_code == 401, keyless.json()
    assert keyless.headers["connection"] == "close"  # refused unread: the server stops reading
    predictor = keys.headers("predictor")
    multipart = {"content-type": "multipart/form-data; boundary=x", **predictor}
    refused = client.post("/v1/cohorts", content=b"--x\r\nnot a multipart body", headers=multipart)
    assert refused.status_code == 403, refused.json()
    auditor = client.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json", **keys.headers()}
    )
    assert auditor.status_code == 422  # control: with the right key the body is read and found wrong


def test_a_failed_commit_answers_an_error_and_leaves_nothing(
    client: TestClient, keys, settings, session_factory
) -> None:
    """With FastAPI's default dependency scope the 202 was sent before the commit ran, so a failed commit
    left the client an id that never existed."""

    def fail(_session) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    factory = client.app.state.session_factory
    event.listen(factory, "before_commit", fail)
    try:
        response = upload(client, keys.headers(), make_zip(6))
    finally:
        event.remove(factory, "before_commit", fail)
    assert response.status_code == 503, response.json()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Cohort)) == 0
    assert not any((settings.data_dir / "cohorts").glob("*"))  # its files went with the rollback
    assert upload(client, keys.headers(), make_zip(6)).status_code == 202  # control


def read_stream(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, str]]:
    events, current = [], {}
    with client.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return events


def test_event_stream_replays_a_finished_job_and_resumes_after_last_event_id(client, keys, session_factory) -> None:
    headers = keys.headers()
    job_id = running_job(session_factory, organisation_id(session_factory))
    report(session_factory, job_id, epoch=1)
    finish(session_factory, job_id)
    events = read_stream(client, f"/v1/jobs/{job_id}/events", headers)
    assert [e["event"] for e in events] == ["state", "state", "progress", "state", "end"]
    assert json.loads(events[2]["data"]) == {"phase": "train", "epoch": 1}
    assert json.loads(events[-1]["data"]) == {"status": "succeeded"}
    resumed = read_stream(client, f"/v1/jobs/{job_id}/events", {**headers, "Last-Event-ID": events[2]["id"]})
    assert [e["event"] for e in resumed] == ["state", "end"]
    assert resumed[0]["id"] == events[3]["id"]
    assert client.get("/v1/jobs/job_missing/events", headers=headers).status_code == 404


def test_refused_anonymous_calls_are_rate_limited_and_logged_truncated(settings, keys, session_factory) -> None:
    """51 keyless POSTs with 60 KB paths once added 3 MB to the audit log."""
    limited = settings.model_copy(update={"anonymous_refusals_per_window": 5, "anonymous_refusal_window_seconds": 600})
    long_id = "x" * 60_000
    with TestClient(create_app(limited, run_supervisor=False)) as client:
        answers = [client.post(f"/v1/jobs/{long_id}/cancel") for _ in range(8)]
        unknown = client.post(f"/v1/{long_id}")  # no route: refused as well, and counted
        assert [r.status_code for r in answers] == [401] * 5 + [429] * 3
        assert unknown.status_code == 404
        assert 0 < int(answers[-1].headers["retry-after"]) <= 600
        assert answers[-1].headers["content-type"] == "application/problem+json"
        # a valid key from the same address is never limited
        assert client.post("/v1/jobs/job_missing/cancel", headers=keys.headers()).status_code == 404
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer fa_bad_key"}).status_code == 429
    with session_factory() as session:
        rows = session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)).all()
    assert [r.status_code for r in rows] == [401] * 5 + [429, 404]
    assert rows[5].detail and "rate_limited" in rows[5].detail
    assert all(len(r.path) <= 512 for r in rows)
    assert rows[0].path.startswith("/v1/jobs/xxx") and rows[0].path.endswith("…")


def test_limiter_forgets_addresses_past_its_bound() -> None:
    now = [0.0]
    limiter = RefusalLimiter(limit=2, window_seconds=10, max_clients=3, clock=lambda: now[0])
    assert [limiter.refuse("a").limited for _ in range(4)] == [False, False, True, True]
    for address in ("b", "c", "d"):  # "a" is the least recently refused: forgotten
        limiter.refuse(address)
    assert not limiter.refuse("a").limited
    now[0] = 10.0  # a new window
    assert [limiter.refuse("b").retry_after for _ in range(3)] == [None, None, 10]


def test_a_hostile_call_with_nul_in_its_path_is_still_audited(client, keys, session_factory) -> None:
    """PostgreSQL refuses NUL in text: the audit row of such a call was lost (only logged)."""
    response = client.post("/v1/jobs/job_%00x/cancel", headers=keys.headers())
    assert response.status_code == 400
    with session_factory() as session:
        rows = session.scalars(select(AuditLogEntry)).all()
    assert [(r.status_code, r.path) for r in rows] == [(400, "/v1/jobs/job_\ufffdx/cancel")]
