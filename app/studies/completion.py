"""Moving a study on once its children have ended: a supervisor duty (``handlers.register_duty``),
so whichever process runs jobs — the API's supervisor, ``fairaudit worker``, a restarted server —
finishes studies, and queues each study's completion job exactly once.

A study whose children have all ended either fails (a child failed or was cancelled, and the study
does not ``allow_failures``; its reason is the child's) or gets its completion job
(``app.studies.completion_job``), which pools and compares and marks the study succeeded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from app.db.base import new_id, utcnow
from app.jobs import state
from app.jobs.models import Job
from app.settings import Settings
from app.studies import repository
from app.studies.children import role_of
from app.studies.models import Study
from app.studies.repository import STUDY_JOB_KIND

ACTIVE = ("queued", "running")


def settle_studies(session: Session, settings: Settings) -> None:
    """Every running study with no active child and no completion job: fail it, or queue its completion."""
    active_child = exists().where(Job.study_id == Study.id, Job.status.in_(ACTIVE))
    ready = session.scalars(
        select(Study).where(Study.status == "running", Study.completion_job_id.is_(None), ~active_child)
    ).all()
    for study in ready:
        jobs = repository.children(session, study.id)
        ended_badly = sorted((job for job in jobs if job.status != "succeeded"), key=lambda j: j.status != "failed")
        if ended_badly and not study.allow_failures:
            job = ended_badly[0]  # a failure's reason rather than a cancellation's
            reason = job.error or f"the job was {job.status}"
            end_study(session, study.id, "failed", error=f"job {job.id} ({role_of(job).label}) {job.status}: {reason}")
        elif len(ended_badly) == len(jobs):
            end_study(session, study.id, "failed", error="no child job succeeded")
        else:
            _queue_completion(session, settings, study)


def _queue_completion(session: Session, settings: Settings, study: Study) -> None:
    """Claim the study's completion with a guarded UPDATE, then queue the job under the claimed id:
    of two supervisors settling the same study, one UPDATE changes the row and only it queues."""
    job_id = new_id("job")
    claimed = session.execute(
        update(Study)
        .where(Study.id == study.id, Study.status == "running", Study.completion_job_id.is_(None))
        .values(completion_job_id=job_id)
        .returning(Study.id)
    ).one_or_none()
    if claimed is not None:
        state.enqueue(
            session,
            organisation_id=study.organisation_id,
            kind=STUDY_JOB_KIND,
            config={"study_id": study.id},
            cohort_id=study.cohort_id,
            max_attempts=settings.max_attempts,
            study_id=study.id,
            job_id=job_id,
        )


def end_study(
    session: Session, study_id: str, status: str, *, error: str | None = None, result: dict[str, Any] | None = None
) -> bool:
    """End a running study; False if it had ended already (e.g. cancelled meanwhile). Never commits."""
    ended = session.execute(
        update(Study)
        .where(Study.id == study_id, Study.status == "running")
        .values(status=status, error=error, result=result, finished_at=utcnow())
        .returning(Study.id)
    ).one_or_none()
    return ended is not None


def fail_study_of_job(session: Session, job_id: str, reason: str) -> None:
    """The study whose completion job failed or was cancelled fails with its reason (``on_failure``)."""
    study_id = session.scalar(select(Study.id).where(Study.completion_job_id == job_id))
    if study_id is not None:
        end_study(session, study_id, "failed", error=f"pooling the study's predictions failed: {reason}")
