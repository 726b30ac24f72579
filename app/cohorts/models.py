"""Cohorts and their items."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column, utcnow

BINARY_TASK: dict[str, Any] = {"kind": "binary", "classes": [], "merged": {}}
BINARY_TASK_JSON = '{"kind": "binary", "classes": [], "merged": {}}'


class Cohort(TimestampMixin, Base):
    """An uploaded image set. Status: ``ingesting`` → ``ready`` | ``failed``; ``deleted`` after DELETE
    (the row stays for the audit trail, its files are gone). ``task``: ``app.modelpkg.task.Task``'s
    fields plus ``merged`` (other_class -> the classes merged into it); rows from before tasks are binary."""

    __tablename__ = "cohorts"

    id: Mapped[str] = id_column("coh")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="ingesting")
    progress: Mapped[float] = mapped_column(default=0.0)
    n_items: Mapped[int] = mapped_column(default=0)
    image_size: Mapped[int]
    channels: Mapped[int]
    attributes: Mapped[list[Any]]
    task: Mapped[dict[str, Any]] = mapped_column(default=lambda: dict(BINARY_TASK), server_default=BINARY_TASK_JSON)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[dict[str, Any] | None]
    ingest_job_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]


class CohortItem(Base):
    """One image of a cohort; ``position`` is its row in the decoded image cache."""

    __tablename__ = "cohort_items"
    __table_args__ = (UniqueConstraint("cohort_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    cohort_id: Mapped[str] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    item_id: Mapped[str] = mapped_column(String(255))
    image_path: Mapped[str] = mapped_column(String(1024))
    label: Mapped[int]  # binary 0/1, class index; multi-label: 1 if any finding is positive (vector: findings)
    findings: Mapped[list[Any] | None]  # multi-label: the finding vector (1 / 0 / -1); else null
    split: Mapped[str] = mapped_column(String(8))
    patient_key: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]]
