"""The audit-log table (written by ``app.audit.middleware``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


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
