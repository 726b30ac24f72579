"""The job state machine against real databases: atomic claims, guarded transitions, recovery."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth.service import ensure_organisation
from app.core.errors import ConflictError
from app.db.base import utcnow
from app.db.engine import transaction
from app.jobs import state
from app.jobs.models import Job, JobEvent


def make_jobs(factory, n: int, max_attempts: int = 2) -> list[str]:
    with transaction(factory) as session:
        org = ensure_organisation(session, "org")
        return [
            state.enqueue(session, organisation_id=org.id, kind="train", config={}, max_attempts=max_attempts).id
            for _ in range(n)
        ]


def test_concurrent_claims_hand_each_job_to_exactly_one_worker(session_factory) -> None:
    ids = make_jobs(session_factory, 12)
    claims: dict[str, list[str]] = {}
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            with transaction(session_factory) as session:
                job = state.claim_next(session, name)
            if job is None:
                return
            with lock:
                claims.setdefault(job.id, []).append(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims) == sorted(ids)
    assert all(len(workers) == 1 for workers in claims.values()), claims


def test_a_worker_that_lost_its_claim_cannot_write(session_factory) -> None:
    (job_id,) = make_jobs(session_factory, 1)
    with transaction(session_factory) as session:
        state.claim_next(session, "old")
    with transaction(session_factory) as session:
        recovered = state.recover_stale(session, timedelta(seconds=0), now=utcnow() + timedelta(seconds=5))
    assert [r.status for r in recovered] == ["queued"]
    with transaction(session_factory) as session:
        assert state.claim_next(session, "new").id == job_id
    with pytest.raises(state.LostClaim), transaction(session_factory) as session:
        state.heartbeat(session, job_id, "old")
    with pytest.raises(state.LostClaim), transaction(session_factory) as session:
        state.finish(session, job_id, "old", "succeeded")
    with transaction(session_factory) as session:
        state.finish(session, job_id, "new", "succeeded", result={"ok": True})
        job = session.get(Job, job_id)
        assert job.status == "succeeded" and job.attempt == 2 and job.worker_id is None


def test_stale_job_fails_after_max_attempts_with_a_reason(session_factory) -> None:
    (job_id,) = make_jobs(session_factory, 1, max_attempts=1)
    with transaction(session_factory) as session:
        state.claim_next(session, "w")
        recovered = state.recover_stale(session, timedelta(seconds=1), now=utcnow() + timedelta(minutes=1))
    assert recovered[0].status == "failed"
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "no heartbeat since" in job.error and "1 attempt" in job.error


def test_cancel_queued_is_immediate_running_is_flagged_ended_is_conflict(session_factory) -> None:
    first, second = make_jobs(session_factory, 2)
    with transaction(session_factory) as session:
        claimed = state.claim_next(session, "w")
        assert claimed.id == first
        assert state.request_cancel(session, session.get(Job, second)).status == "cancelled"
        job = state.request_cancel(session, session.get(Job, first))
        assert job.status == "running" and job.cancel_requested_at is not None
    with transaction(session_factory) as session:
        assert state.heartbeat(session, first, "w") is True
        state.finish(session, first, "w", "cancelled")
    with pytest.raises(ConflictError), transaction(session_factory) as session:
        state.request_cancel(session, session.get(Job, first))
    with session_factory() as session:
        types = [
            e.data["status"]
            for e in session.scalars(select(JobEvent).where(JobEvent.job_id == first).order_by(JobEvent.id))
        ]
    assert types == ["queued", "running", "running", "cancelled"]


def test_history_keeps_one_entry_per_epoch_when_a_resumed_run_re_reports(session_factory) -> None:
    (job_id,) = make_jobs(session_factory, 1)
    with transaction(session_factory) as session:
        state.claim_next(session, "w")
    for epoch, auc in [(1, 0.6), (2, 0.7), (2, 0.7), (3, 0.8)]:
        with transaction(session_factory) as session:
            entry = {"epoch": epoch, "val_auc": auc}
            state.report_progress(session, job_id, "w", entry, history_entry=entry)
    with session_factory() as session:
        assert [h["epoch"] for h in session.get(Job, job_id).history] == [1, 2, 3]
