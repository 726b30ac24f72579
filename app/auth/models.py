"""Organisations, API keys and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column, utcnow


class Organisation(TimestampMixin, Base):
    __tablename__ = "organisations"

    id: Mapped[str] = id_column("org")
    name: Mapped[str] = mapped_column(String(200), unique=True)


class ApiKey(TimestampMixin, Base):
    """An API key. Only a SHA-256 of the secret is stored; the key is shown once, at creation.

    Keys are 256-bit random tokens, so a fast hash is enough (no password-stretching needed); the
    public ``prefix`` finds the row without scanning.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditLogEntry(Base):
    """One row per state-changing call, successful or not (who, what, on which resource, outcome)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_time", "organisation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    organisation_id: Mapped[str | None] = mapped_column(String(32))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int]
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]
