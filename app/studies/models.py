"""A study: K folds × seeds × configs training jobs (its children, ``jobs.study_id``), then one
completion job that pools each config's out-of-fold predictions and compares the configs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column, utcnow

STUDY_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class Study(TimestampMixin, Base):
    __tablename__ = "studies"

    id: Mapped[str] = id_column("std")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    cohort_id: Mapped[str] = mapped_column(ForeignKey("cohorts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, succeeded, failed, cancelled
    folds: Mapped[int]
    seeds: Mapped[int]
    repeat_splits: Mapped[bool]
    allow_failures: Mapped[bool]
    final_models: Mapped[bool]
    val_fraction: Mapped[float]
    configs: Mapped[list[Any]]  # the training configs as checked, the reference first
    # The job that pools and compares once every child has ended. No foreign key: the id is written
    # here first, by a guarded UPDATE, so that exactly one supervisor queues that job.
    completion_job_id: Mapped[str | None] = mapped_column(String(32))
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
