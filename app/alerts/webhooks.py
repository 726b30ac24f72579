"""Webhooks: registering a receiver, signing a body, and delivering queued events with retries.

Signature (docs/monitoring.md shows a receiver's check): every POST carries
``X-FairAudit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, plus
``X-FairAudit-Event`` and ``X-FairAudit-Delivery`` (the same id on every retry: deduplicate on it).
The timestamp is inside the signed bytes, so a receiver can refuse replays older than a few minutes.

Delivery (``deliver_due``, run by ``app.alerts.worker``): due rows are claimed in a short transaction
that pushes their next attempt past the request's timeout (a lease: a process that dies mid-request
leaves the row to be retried, never lost, since rows are committed); the POST runs outside any
transaction, with bounded timeouts, no redirects, and at most ``webhook_max_response_bytes`` of the
answer read. A 2xx delivers; anything else is retried after ``backoff × 2^(attempt−1)`` (capped)
until ``webhook_max_attempts``; ``webhook_disable_after`` consecutive failed attempts of one webhook
disable it and fail its pending deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.alerts.models import Webhook, WebhookDelivery
from app.core.errors import InputError
from app.db.base import utcnow
from app.db.engine import transaction
from app.settings import Settings

SIGNATURE_HEADER = "X-FairAudit-Signature"
CLAIM_BATCH = 20
MAX_WEBHOOKS = 20  # per organisation


def check_url(url: str) -> str:
    """An http(s) URL with a host and no credentials (a password in a URL ends up in logs)."""
    parts = urlsplit(url)
    problem = None
    if not (url.isascii() and url.isprintable()) or " " in url:
        problem = "the URL must be printable ASCII without spaces (percent-encode anything else)"
    elif parts.scheme not in ("http", "https"):
        problem = "only http and https URLs are accepted"
    elif parts.username is not None or parts.password is not None:
        problem = "the URL must not contain credentials; the signature authenticates the sender"
    elif not parts.hostname:
        problem = "the URL has no host"
    if problem is not None:
        raise InputError("invalid webhook URL", [{"field": "url", "message": problem}])
    return url


def create_webhook(session: Session, organisation_id: str, url: str) -> tuple[Webhook, str]:
    existing = session.scalars(
        select(Webhook.id).where(Webhook.organisation_id == organisation_id, Webhook.deleted_at.is_(None))
    ).all()
    if len(existing) >= MAX_WEBHOOKS:
        raise InputError(f"an organisation has at most {MAX_WEBHOOKS} webhooks", status=409)
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook(organisation_id=organisation_id, url=check_url(url), secret=secret)
    session.add(webhook)
    session.flush()
    return webhook, secret


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in fields or not fields["t"].isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(fields["t"]), body), header)


@dataclass(frozen=True)
class Claimed:
    id: str
    webhook_id: str
    url: str
    secret: str
    event: str
    body: str


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None
    response: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver_due(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> int:
    """Attempt every due delivery once; the number attempted."""
    claimed = claim(factory, settings, now or utcnow())
    if not claimed:  # the usual case: a client (its TLS context costs milliseconds of CPU) only when needed
        return 0
    with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False) as client:
        for delivery in claimed:
            record(factory, settings, delivery, post(client, settings, delivery), now or utcnow())
    return len(claimed)


def claim(factory: sessionmaker[Session], settings: Settings, now: datetime) -> list[Claimed]:
    with factory() as session:  # most looks find nothing: do not take the write lock for them
        if session.scalar(_due(now).limit(1)) is None:
            return []
    lease = now + timedelta(seconds=3 * settings.webhook_timeout_seconds + 30)
    with transaction(factory) as session:
        rows = session.execute(_due(now).limit(CLAIM_BATCH).with_for_update(skip_locked=True)).scalars().all()
        out = []
        for delivery in rows:
            webhook = session.get(Webhook, delivery.webhook_id)
            assert webhook is not None
            delivery.next_attempt_at = lease
            out.append(Claimed(delivery.id, webhook.id, webhook.url, webhook.secret, delivery.event, delivery.body))
    return out


def _due(now: datetime) -> Select[WebhookDelivery]:
    enabled = select(Webhook.id).where(Webhook.enabled.is_(True), Webhook.deleted_at.is_(None))
    return (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.webhook_id.in_(enabled),
        )
        .order_by(WebhookDelivery.next_attempt_at)
    )


def post(client: httpx.Client, settings: Settings, delivery: Claimed) -> Attempt:
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "FairAudit-Webhook/1",
        "X-FairAudit-Event": delivery.event,
        "X-FairAudit-Delivery": delivery.id,
        SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
    }
    try:
        with client.stream("POST", delivery.url, content=body, headers=headers) as response:
            kept = bytearray()
            for chunk in response.iter_bytes():
                kept += chunk[: settings.webhook_max_response_bytes - len(kept)]
                if len(kept) >= settings.webhook_max_response_bytes:
                    break
        return Attempt(
            response.status_code,
            None if response.is_success else f"HTTP {response.status_code}",
            kept.decode(errors="replace"),
        )
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], None)


def record(
    factory: sessionmaker[Session], settings: Settings, claimed: Claimed, attempt: Attempt, now: datetime
) -> None:
    with transaction(factory) as session:
        delivery = session.get(WebhookDelivery, claimed.id, with_for_update=True)
        webhook = session.get(Webhook, claimed.webhook_id, with_for_update=True)
        if delivery is None or webhook is None:
            return
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error, delivery.last_response = (
            attempt.status_code,
            attempt.error,
            attempt.response,
        )
        if attempt.ok:
            delivery.status, delivery.delivered_at = "delivered", now
            webhook.consecutive_failures = 0
            return
        webhook.consecutive_failures += 1
        if delivery.attempts >= settings.webhook_max_attempts:
            delivery.status = "failed"
        else:
            delay = settings.webhook_backoff_seconds * 2 ** (delivery.attempts - 1)
            delivery.next_attempt_at = now + timedelta(seconds=min(delay, settings.webhook_backoff_max_seconds))
        if webhook.consecutive_failures >= settings.webhook_disable_after and webhook.enabled:
            webhook.enabled = False
            webhook.disabled_reason = f"disabled after {webhook.consecutive_failures} consecutive failed attempts"
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.status == "pending")
                .values(status="failed", last_error="the webhook was disabled")
            )
