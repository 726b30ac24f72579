"""Webhooks against a real local HTTP receiver: signed bodies, retries with backoff, a delivery log,
disabling after repeated failures, retries after a crash mid-delivery, and the server's own loops."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from alert_helpers import BAND, Receiver, post_batch
from fastapi.testclient import TestClient
from monitoring_helpers import organisation_id, register_model

from app.alerts.service import evaluate_due
from app.alerts.webhooks import SIGNATURE_HEADER, claim, deliver_due, verify
from app.db.base import utcnow
from app.main import create_app


@pytest.fixture
def receiver():
    receivers: list[Receiver] = []

    def make(script: list[int]) -> Receiver:
        receivers.append(Receiver(script))
        return receivers[-1]

    yield make
    for r in receivers:
        r.close()


def _breach(client, keys, session_factory, settings) -> str:
    """A rule that breaches on a new model: one ``alert.firing`` event queued per webhook."""
    model_id = register_model(session_factory)
    rule = {"name": "band", "model_ref": model_id, "rule": BAND, "min_n": 40, "min_interval_seconds": 1}
    assert client.post("/v1/alert-rules", headers=keys.headers(), json=rule).status_code == 201
    post_batch(client, keys.headers(role="predictor"), model_id, organisation_id(session_factory), {"a": 0.9, "b": 0})
    assert evaluate_due(session_factory, settings) == 1
    return model_id


def _create(client, admin, url: str) -> dict:
    response = client.post("/v1/webhooks", headers=admin, json={"url": url})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_delivery_is_retried_with_backoff_until_the_receiver_takes_it(
    client, keys, session_factory, settings, receiver
):
    hook = receiver([500, 503, 200])
    admin = keys.headers(role="admin")
    webhook = _create(client, admin, hook.url)
    secret = webhook["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in client.get("/v1/webhooks", headers=admin).json()["items"][0]  # shown once
    _breach(client, keys, session_factory, settings)

    t0 = utcnow()
    backoff = timedelta(seconds=settings.webhook_backoff_seconds)
    assert deliver_due(session_factory, settings, t0) == 1  # 500
    assert deliver_due(session_factory, settings, t0 + backoff / 2) == 0  # not due yet
    assert deliver_due(session_factory, settings, t0 + backoff) == 1  # 503
    assert deliver_due(session_factory, settings, t0 + backoff + backoff) == 0  # the second wait doubles
    assert deliver_due(session_factory, settings, t0 + backoff * 3) == 1  # 200
    assert deliver_due(session_factory, settings, t0 + backoff * 100) == 0  # delivered: never again

    assert len(hook.requests) == 3
    bodies = {body for _, body in hook.requests}
    assert len(bodies) == 1  # every retry carries the same bytes
    headers, body = hook.requests[-1]
    assert headers["X-FairAudit-Event"] == "alert.firing"
    assert len({h["X-FairAudit-Delivery"] for h, _ in hook.requests}) == 1
    signature = headers[SIGNATURE_HEADER]
    timestamp, digest = (part.split("=", 1)[1] for part in signature.split(","))
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, expected)  # what a receiver computes, independently of the service
    assert verify(secret, signature, body) and not verify(secret, signature, body + b" ")
    assert not verify("whsec_wrong", signature, body)

    log = client.get(f"/v1/webhooks/{webhook['id']}/deliveries", headers=admin).json()["items"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 3, 200)]
    assert log[0]["last_response"] == "thanks"
    assert client.get("/v1/webhooks/whk_nope/deliveries", headers=admin).status_code == 404
    assert client.get(f"/v1/webhooks/{webhook['id']}/deliveries", headers=keys.headers()).status_code == 403


def test_repeated_failures_disable_the_webhook(client, keys, session_factory, settings, receiver):
    settings = settings.model_copy(update={"webhook_disable_after": 3})
    hook = receiver([500])
    admin = keys.headers(role="admin")
    webhook = _create(client, admin, hook.url)
    _breach(client, keys, session_factory, settings)
    clock = utcnow()
    for _ in range(3):
        assert deliver_due(session_factory, settings, clock) == 1
        clock += timedelta(seconds=settings.webhook_backoff_max_seconds)
    assert deliver_due(session_factory, settings, clock) == 0  # disabled: nothing more is sent
    assert len(hook.requests) == 3
    (listed,) = client.get("/v1/webhooks", headers=admin).json()["items"]
    assert listed["enabled"] is False and "3 consecutive failed attempts" in listed["disabled_reason"]
    (delivery,) = client.get(f"/v1/webhooks/{webhook['id']}/deliveries", headers=admin).json()["items"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert len(delivery["last_response"]) == settings.webhook_max_response_bytes  # the answer is cut short


def test_a_delivery_claimed_by_a_process_that_died_is_retried(client, keys, session_factory, settings, receiver):
    hook = receiver([200])
    _create(client, keys.headers(role="admin"), hook.url)
    _breach(client, keys, session_factory, settings)
    now = utcnow()
    assert len(claim(session_factory, settings, now)) == 1  # claimed, then the process "dies" before posting
    assert deliver_due(session_factory, settings, now) == 0  # leased to the dead process for a while
    assert deliver_due(session_factory, settings, now + timedelta(minutes=5)) == 1
    assert len(hook.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "https://user:secret@example.org/hook",
        "file:///etc/passwd",
        "https:///nohost",
        "hook",
        "http://a\x00b/",
    ],
)
def test_webhook_urls_must_be_plain_http(client, keys, url):
    response = client.post("/v1/webhooks", headers=keys.headers(role="admin"), json={"url": url})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["url"]


def test_the_server_loops_judge_rules_and_deliver(keys, session_factory, settings, receiver):
    hook = receiver([200])
    live = settings.model_copy(
        update={
            "alert_evaluation_enabled": True,
            "webhook_delivery_enabled": True,
            "alert_poll_seconds": 0.2,
            "webhook_poll_seconds": 0.2,
        }
    )
    with TestClient(create_app(live, run_supervisor=False)) as client:
        _create(client, keys.headers(role="admin"), hook.url)
        model_id = register_model(session_factory)
        rule = {"name": "band", "model_ref": model_id, "rule": BAND, "min_n": 40, "min_interval_seconds": 1}
        assert client.post("/v1/alert-rules", headers=keys.headers(), json=rule).status_code == 201
        post_batch(client, keys.headers(role="predictor"), model_id, organisation_id(session_factory), {"a": 1, "b": 0})
        assert hook.arrived.wait(timeout=60), "no delivery reached the receiver"
    assert b'"event":"alert.firing"' in hook.requests[0][1]
