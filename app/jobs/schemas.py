from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.models import Job


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    cohort_id: str | None
    method: str | None
    study_id: str | None = Field(description="the study this job belongs to (a child or its completion job)")
    config: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    progress: dict[str, Any] = Field(description="latest progress: epoch, step, losses, val AUC/PFD, eta")
    history: list[dict[str, Any]] = Field(description="one entry per finished epoch")
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        data = {name: getattr(job, name) for name in cls.model_fields if name != "cancel_requested"}
        return cls(**data, cancel_requested=job.cancel_requested_at is not None)


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
