"""A request id per request: taken from a sane ``X-Request-ID`` or made, echoed in the response header,
named in every problem body and carried by every log line written while the request runs (the event
loop's and the threadpool's), rendered as JSON by the structlog set-up the server uses."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog
from fastapi.testclient import TestClient

from app.main import create_app
from app.observability.logs import configure_logging

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The process's logging configured as ``fairaudit serve`` does, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("json", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers, root.level = saved
        structlog.reset_defaults()


def test_problems_name_the_request_id_given_or_made(client) -> None:
    given = client.get("/v1/cohorts", headers={"X-Request-ID": "lb-7f3a:42"})
    assert given.status_code == 401 and given.headers["content-type"] == "application/problem+json"
    assert given.headers["x-request-id"] == given.json()["request_id"] == "lb-7f3a:42"
    made = client.get("/v1/nowhere")
    assert made.status_code == 404 and GENERATED.fullmatch(made.json()["request_id"])
    assert made.headers["x-request-id"] == made.json()["request_id"]
    assert client.get("/healthz").headers["x-request-id"] != made.headers["x-request-id"]  # one per request


def test_a_hostile_request_id_is_replaced(client) -> None:
    for hostile in (b"x" * 129, b"x" * 100_000, b"a\x01b", b"a\x7fb", b"two words", "\u00e9t\u00e9".encode(), b""):
        answer = client.get("/v1/cohorts", headers={"X-Request-ID": hostile})
        assert GENERATED.fullmatch(answer.headers["x-request-id"]), hostile
        assert answer.json()["request_id"] == answer.headers["x-request-id"]


def test_an_unexpected_error_is_a_problem_naming_the_request(settings) -> None:
    app = create_app(settings, run_supervisor=False)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["request_id"] == "bug-1" and "a bug" not in answer.text


def test_every_log_line_of_a_request_carries_its_id(settings, keys, log_lines) -> None:
    app = create_app(settings, run_supervisor=False)

    def chatty() -> dict[str, str]:  # a sync endpoint: it runs in a threadpool thread
        logging.getLogger("app.test").warning("inside the endpoint %s", "thread", extra={"detail": 7})
        return {"ok": "yes"}

    app.add_api_route("/chatty", chatty)
    with TestClient(app) as client:
        log_lines.truncate(0)
        log_lines.seek(0)
        assert client.get("/chatty", headers={"X-Request-ID": "req-1"}).status_code == 200
        assert client.get("/v1/cohorts/coh_x", headers={**keys.headers(), "X-Request-ID": "req-2"}).status_code == 404
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    endpoint = [entry for entry in lines if entry["logger"] == "app.test"]
    assert endpoint == [
        {
            "event": "inside the endpoint thread",
            "detail": 7,
            "level": "warning",
            "logger": "app.test",
            "request_id": "req-1",
            "timestamp": endpoint[0]["timestamp"],
        }
    ]
    access = [entry for entry in lines if entry["logger"] == "fairaudit.access"]
    assert [(a["request_id"], a["route"], a["status"]) for a in access] == [
        ("req-1", "/chatty", 200),
        ("req-2", "/v1/cohorts/{cohort_id}", 404),
    ]
    server_side = [entry for entry in lines if entry["logger"] != "httpx"]  # httpx: the test's own client
    assert server_side and all(entry["request_id"] in ("req-1", "req-2") for entry in server_side), server_side
