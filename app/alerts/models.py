"""Alert rules, the alerts they raise, webhooks and their deliveries (an outbox: a delivery row is
written in the transaction that raises its alert, so none is lost to a crash or a restart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column

FIRING = "firing"


class AlertRule(TimestampMixin, Base):
    """A check (``app.alerts.rules``) on one model's live monitoring window, owned by an organisation.
    ``model_ref`` is a model id or an alias, resolved at each evaluation (an alias follows promotions)."""

    __tablename__ = "alert_rules"

    id: Mapped[str] = id_column("alr")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    model_ref: Mapped[str] = mapped_column(String(64))
    rule: Mapped[dict[str, Any]]
    window_days: Mapped[int | None]
    last_outcomes: Mapped[int | None]
    min_n: Mapped[int]
    min_interval_seconds: Mapped[float]
    last_evaluated_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(16))  # pass / fail / insufficient / skipped
    deleted_at: Mapped[datetime | None]


class Alert(TimestampMixin, Base):
    """One breach of a rule by one model version: ``firing`` from the evaluation that found it until
    the one that finds the rule holding again (``resolved``). At most one firing alert per rule and
    model (a partial unique index), so a breach fires once however many evaluations see it."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_firing",
            "rule_id",
            "model_version_id",
            unique=True,
            sqlite_where=text("status = 'firing'"),
            postgresql_where=text("status = 'firing'"),
        ),
    )

    id: Mapped[str] = id_column("alt")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("alert_rules.id"), index=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default=FIRING)
    value: Mapped[float | None]
    message: Mapped[str]
    resolved_at: Mapped[datetime | None]


class Webhook(TimestampMixin, Base):
    """A receiver of alert events. The secret signs every body (HMAC-SHA256); it is shown once, at
    creation, and kept because signing needs it."""

    __tablename__ = "webhooks"

    id: Mapped[str] = id_column("whk")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(default=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    disabled_reason: Mapped[str | None]
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(TimestampMixin, Base):
    """One event for one webhook: ``pending`` (due at ``next_attempt_at``), ``delivered`` or ``failed``.
    The body is stored as sent, so every retry carries the same bytes (a receiver can deduplicate by
    the delivery id)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = id_column("dlv")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None]
    last_response: Mapped[str | None]
    delivered_at: Mapped[datetime | None]
