"""Organisations and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column


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
