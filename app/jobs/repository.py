"""Queries for jobs and their event log."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.repository import OrgScopedRepository
from app.jobs.models import Job, JobEvent

JOBS = OrgScopedRepository(Job, "job")


def events_after(session: Session, job_id: str, after_id: int) -> list[JobEvent]:
    return list(
        session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id))
    )
