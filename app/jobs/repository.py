from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core.errors import NotFoundError
from app.jobs.models import Job, JobEvent


def get_job(session: Session, organisation_id: str, job_id: str) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.organisation_id == organisation_id))
    if job is None:
        raise NotFoundError("job", job_id)
    return job


def jobs_query(
    organisation_id: str, *, status: str | None, cohort_id: str | None, method: str | None, kind: str | None
) -> Select[Job]:
    query = select(Job).where(Job.organisation_id == organisation_id)
    for column, value in (
        (Job.status, status),
        (Job.cohort_id, cohort_id),
        (Job.method, method),
        (Job.kind, kind),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


def events_after(session: Session, job_id: str, after_id: int) -> list[JobEvent]:
    return list(
        session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id))
    )
