"""Jobs (training, ingestion, evaluation, audit) and their event log. The job row is the source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column, utcnow

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = id_column("job")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"), index=True)
    method: Mapped[str | None] = mapped_column(String(64))
    # A training job's model version: its id is given when the job is queued (the export is named by it)
    # and the version is registered under it when the job succeeds. No foreign key: until then no such
    # row exists, yet a request for it can be told that its job is still running (``serving.registry``).
    model_version_id: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
    # The study that created this job (its children and its completion job); by table name, as
    # ``cohort_id`` is: studies sit above jobs.
    study_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id"), index=True)
    config: Mapped[dict[str, Any]]
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    history: Mapped[list[Any]] = mapped_column(default=list)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobEvent(Base):
    """State changes and progress of a job, in order (the server-sent event stream reads these)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]
