"""An audit's evaluation follows its job to the end, however the job ends, on both databases: the
transaction that ends the job marks the evaluation ``failed`` with the reason (it once stayed
``running`` in the database, its ``error`` never written)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.db.base import utcnow
from app.db.engine import transaction
from app.fairness.models import Evaluation
from app.jobs import state
from app.jobs.models import Job

WORKER = "w"


def audit_waiting_on_its_job(factory: sessionmaker[Session], max_attempts: int = 1) -> tuple[str, str]:
    """(evaluation id, job id): a ``running`` audit evaluation and its queued audit job."""
    with transaction(factory) as session:
        org = ensure_organisation(session, "org").id
        job = state.enqueue(session, organisation_id=org, kind="audit", config={}, max_attempts=max_attempts)
        evaluation = Evaluation(
            organisation_id=org,
            kind="audit",
            status="running",
            job_id=job.id,
            config={},
            metric_definition_version="1.0",
        )
        session.add(evaluation)
        session.flush()
        return evaluation.id, job.id


def claimed(factory: sessionmaker[Session], job_id: str) -> None:
    with transaction(factory) as session:
        assert state.claim_next(session, WORKER).id == job_id


def crash(factory: sessionmaker[Session], job_id: str) -> None:
    """The job process died: the supervisor finds its heartbeat stale."""
    claimed(factory, job_id)
    with transaction(factory) as session:
        state.recover_stale(session, timedelta(seconds=0), now=utcnow() + timedelta(seconds=5))


def fail(factory: sessionmaker[Session], job_id: str) -> None:
    claimed(factory, job_id)
    with transaction(factory) as session:
        state.finish(session, job_id, WORKER, "failed", error="ValueError: unreadable predictions")


def cancel_running(factory: sessionmaker[Session], job_id: str) -> None:
    claimed(factory, job_id)
    with transaction(factory) as session:
        state.finish(session, job_id, WORKER, "cancelled")


def cancel_queued(factory: sessionmaker[Session], job_id: str) -> None:
    with transaction(factory) as session:
        state.request_cancel(session, session.get(Job, job_id))


def cancel_then_crash(factory: sessionmaker[Session], job_id: str) -> None:
    claimed(factory, job_id)
    with transaction(factory) as session:
        state.request_cancel(session, session.get(Job, job_id))
    with transaction(factory) as session:
        state.recover_stale(session, timedelta(seconds=0), now=utcnow() + timedelta(seconds=5))


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (fail, "ValueError: unreadable predictions"),
        (crash, "no heartbeat since"),
        (cancel_running, "the audit job was cancelled"),
        (cancel_queued, "the audit job was cancelled"),
        (cancel_then_crash, "the audit job was cancelled"),
    ],
)
def test_a_job_that_does_not_succeed_fails_its_evaluation(
    session_factory, end: Callable[[sessionmaker[Session], str], None], reason: str
) -> None:
    evaluation_id, job_id = audit_waiting_on_its_job(session_factory)
    end(session_factory, job_id)
    with session_factory() as session:
        evaluation, job = session.get(Evaluation, evaluation_id), session.get(Job, job_id)
    assert job.status in ("failed", "cancelled")
    assert evaluation.status == "failed" and evaluation.error.startswith(reason)


def test_a_run_that_will_be_retried_leaves_its_evaluation_running(session_factory) -> None:
    evaluation_id, job_id = audit_waiting_on_its_job(session_factory, max_attempts=2)
    crash(session_factory, job_id)
    with session_factory() as session:
        assert session.get(Job, job_id).status == "queued"
        evaluation = session.get(Evaluation, evaluation_id)
    assert evaluation.status == "running" and evaluation.error is None
