"""The only module that changes a job's state.

Every transition is a guarded UPDATE (``WHERE status = … AND worker_id = …``), so a worker that lost
its claim (its heartbeat went stale and the job was handed to someone else) can no longer write:
there are never two live runs of one job. Functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.errors import ConflictError
from app.db.base import new_id, utcnow
from app.jobs import handlers
from app.jobs.models import TERMINAL_STATUSES, Job, JobEvent


class LostClaim(Exception):
    """The worker no longer holds the job (recovered as stale, or finished elsewhere)."""


def _event(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, data=data))


def _settle(session: Session, job_id: str, kind: str, status: str, error: str | None) -> None:
    """A job that failed or was cancelled fails the rows waiting on it (the ``on_failure`` hook of its
    kind in ``app.jobs.handlers``), in the transaction that ends it."""
    if status in ("failed", "cancelled"):
        hook = handlers.failure_hook(kind)
        if hook is not None:
            hook(session, job_id, error or f"the {kind} job was {status}")


def enqueue(
    session: Session,
    *,
    organisation_id: str,
    kind: str,
    config: dict[str, Any],
    max_attempts: int,
    cohort_id: str | None = None,
    method: str | None = None,
    model_version_id: str | None = None,
    study_id: str | None = None,
    job_id: str | None = None,
) -> Job:
    """Queue a job. ``job_id``: an id chosen beforehand (written elsewhere first, to claim the right
    to queue it); by default a new one."""
    job = Job(
        id=job_id or new_id("job"),
        organisation_id=organisation_id,
        kind=kind,
        config=config,
        cohort_id=cohort_id,
        method=method,
        model_version_id=model_version_id,
        study_id=study_id,
        max_attempts=max_attempts,
        status="queued",
        progress={},
        history=[],
    )
    session.add(job)
    session.flush()
    _event(session, job.id, "state", {"status": "queued"})
    return job


def claim_next(session: Session, worker_id: str, kinds: Iterable[str] | None = None) -> Job | None:
    """Atomically move the oldest queued job to ``running`` for this worker.

    One UPDATE … WHERE id = (oldest queued) AND status = 'queued': if two supervisors pick the same
    row, PostgreSQL re-checks the status after the first commits and SQLite serialises writers, so
    exactly one wins; the loser gets no row and tries again.
    """
    oldest = select(Job.id).where(Job.status == "queued")
    if kinds is not None:
        oldest = oldest.where(Job.kind.in_(list(kinds)))
    oldest = oldest.order_by(Job.created_at, Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    now = utcnow()
    job_id = session.execute(
        update(Job)
        .where(Job.id == oldest.scalar_subquery(), Job.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            attempt=Job.attempt + 1,
            heartbeat_at=now,
            started_at=now,
            error=None,
        )
        .returning(Job.id)
    ).scalar_one_or_none()
    if job_id is None:
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    _event(session, job.id, "state", {"status": "running", "attempt": job.attempt, "worker": worker_id})
    return job


def _owned(job_id: str, worker_id: str) -> Any:
    return update(Job).where(Job.id == job_id, Job.status == "running", Job.worker_id == worker_id)


def heartbeat(session: Session, job_id: str, worker_id: str) -> bool:
    """Record that the worker is alive; return whether a cancel was requested."""
    result = session.execute(_owned(job_id, worker_id).values(heartbeat_at=utcnow()).returning(Job.cancel_requested_at))
    row = result.one_or_none()
    if row is None:
        raise LostClaim(job_id)
    return row[0] is not None


def vouch(session: Session, worker_id: str, job_ids: Iterable[str]) -> None:
    """The supervisor vouches for runs it can see alive (a child still importing its libraries has
    not begun to heartbeat itself yet, and must not be taken for dead by another supervisor)."""
    ids = list(job_ids)
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status == "running", Job.worker_id == worker_id)
            .values(heartbeat_at=utcnow())
        )


def report_progress(
    session: Session,
    job_id: str,
    worker_id: str,
    progress: dict[str, Any],
    history_entry: dict[str, Any] | None = None,
) -> None:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.status == "running", Job.worker_id == worker_id))
    if job is None:
        raise LostClaim(job_id)
    job.progress = progress
    job.heartbeat_at = utcnow()
    if history_entry is not None:
        job.history = _with_epoch(job.history, history_entry)
    _event(session, job_id, "progress", progress)


def _with_epoch(history: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """History keyed by epoch: a resumed run re-reports its last checkpointed epoch (the report may
    not have landed before the crash), so an epoch already recorded is replaced, never duplicated."""
    kept = [h for h in history if h.get("epoch") != entry.get("epoch")]
    return sorted([*kept, entry], key=lambda h: h.get("epoch") or 0)


def finish(
    session: Session,
    job_id: str,
    worker_id: str,
    status: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    """End a running job held by ``worker_id`` (succeeded / failed / cancelled)."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"{status!r} is not a terminal status")
    kind = session.execute(
        _owned(job_id, worker_id)
        .values(status=status, error=error, result=result, finished_at=utcnow(), worker_id=None)
        .returning(Job.kind)
    ).scalar_one_or_none()
    if kind is None:
        raise LostClaim(job_id)
    _settle(session, job_id, kind, status, error)
    data: dict[str, Any] = {"status": status}
    if error:
        data["error"] = error
    if result:
        data["result"] = result
    _event(session, job_id, "state", data)


def release(session: Session, job: Job, reason: str) -> str:
    """A run ended without finishing (its process died, its heartbeat went stale): queue it again
    while attempts remain (the next run resumes from the last checkpoint), else fail it."""
    if job.status != "running":
        return job.status
    if job.cancel_requested_at is not None:
        job.status, job.error = "cancelled", None
    elif job.attempt < job.max_attempts:
        job.status, job.error = "queued", None
    else:
        job.status = "failed"
        job.error = f"{reason}; gave up after {job.attempt} attempt(s)"
    job.worker_id = None
    if job.status in TERMINAL_STATUSES:
        job.finished_at = utcnow()
        _settle(session, job.id, job.kind, job.status, job.error)
    _event(session, job.id, "state", {"status": job.status, "reason": reason, "attempt": job.attempt})
    return job.status


@dataclass(frozen=True)
class Recovered:
    job_id: str
    status: str
    reason: str


def recover_stale(
    session: Session, stale_after: timedelta, *, now: datetime | None = None, gone_runs: Iterable[str] = ()
) -> list[Recovered]:
    """Release running jobs whose heartbeat is older than ``stale_after`` or whose run is known to be
    over (``gone_runs``: job ids whose process is proven dead)."""
    cutoff = (now or utcnow()) - stale_after
    gone = list(gone_runs)
    condition = Job.heartbeat_at < cutoff
    if gone:
        condition = condition | Job.id.in_(gone)
    jobs = session.scalars(select(Job).where(Job.status == "running", condition).with_for_update()).all()
    out = []
    for job in jobs:
        reason = (
            "its worker process is gone"
            if job.id in gone
            else f"no heartbeat since {job.heartbeat_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        out.append(Recovered(job.id, release(session, job, reason), reason))
    return out


def request_cancel(session: Session, job: Job) -> Job:
    """Queued jobs are cancelled at once; running ones are flagged and stop at their next step."""
    now = utcnow()
    cancelled_queued = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", finished_at=now, cancel_requested_at=now)
        .returning(Job.id)
    ).one_or_none()
    if cancelled_queued is not None:
        _settle(session, job.id, job.kind, "cancelled", None)
        _event(session, job.id, "state", {"status": "cancelled"})
    else:
        flagged = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "running", Job.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now)
            .returning(Job.id)
        ).one_or_none()
        if flagged is not None:
            _event(session, job.id, "state", {"status": "running", "cancel_requested": True})
    session.refresh(job)
    if cancelled_queued is None and job.status in TERMINAL_STATUSES:
        raise ConflictError(f"job {job.id} has already ended ({job.status})")
    return job
