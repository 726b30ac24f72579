"""The job supervisor: claims queued jobs and runs each through an executor — by default its own
spawned child process (embedded), or a Ray task (scale-out, ``app.jobs.ray_executor``).

A crash, OOM kill or segfault in training takes down only the child; the supervisor sees the exit,
and the job is queued again (resuming from its checkpoint) or failed once attempts run out. Cancel
requests are honoured by the child at its next step; a child that ignores them is killed after a
grace period. Several supervisors (several API replicas) may share one database: claims are atomic.
A supervisor claims only the kinds of job registered in its process (``app.jobs.handlers``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.engine import transaction
from app.jobs import handlers, state
from app.jobs.executors import Executor, LocalProcessExecutor, RunHandle
from app.jobs.files import job_work_dir, remove_job_files
from app.jobs.lifeline import run_is_gone
from app.jobs.models import TERMINAL_STATUSES, Job
from app.settings import Settings

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gone_local_runs(session: Session, settings: Settings, *, warn: bool = False) -> list[str]:
    """Running jobs whose run is provably over: claimed on this host by a process that no longer
    exists, and with nobody holding their run lock (the claiming server's job process, and anything
    it started, are gone too). Recovered at once, instead of waiting for the heartbeat to age; a
    run that outlived its server keeps the job until it ends or its heartbeat goes stale (``warn``:
    say so, once, at start-up)."""
    host = socket.gethostname()
    gone = []
    for job_id, worker_id in session.execute(select(Job.id, Job.worker_id).where(Job.status == "running")):
        parts = (worker_id or "").split(":")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        if run_is_gone(job_work_dir(settings, job_id)):
            gone.append(job_id)
        elif warn:
            log.warning("job %s: its server %s is gone but a run still holds the job; waiting", job_id, parts[1])
    return gone


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        executor: Executor | None = None,
        capacity: int | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.executor = executor or LocalProcessExecutor()
        self.worker_id = new_worker_id()
        self.capacity = capacity or settings.max_concurrent_jobs
        self.kinds = handlers.kinds()  # claims only jobs it knows how to run
        if not self.kinds:
            raise RuntimeError(
                "no job kinds are registered in this process: load the service's domains (app.main) first"
            )
        self._duties = handlers.duties()
        self._children: dict[str, RunHandle] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.recover(startup=True)
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; kill running children and hand their jobs back to the queue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for child in list(self._children.values()):
            child.kill()
            self._release(child.job_id, "the server stopped while the job was running")
        self._children.clear()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.tick()
            except Exception:  # keep supervising through transient database errors
                log.exception("supervisor tick failed")

    def tick(self) -> None:
        self._reap()
        self._enforce_cancels()
        with transaction(self.session_factory) as session:
            state.vouch(session, self.worker_id, self._children)
        self.recover()
        self._do_duties()
        while len(self._children) < self.capacity and not self._stop.is_set():
            with transaction(self.session_factory) as session:
                job = state.claim_next(session, self.worker_id, kinds=self.kinds)
            if job is None:
                break
            handle = self.executor.launch(
                job.id, self.worker_id, self.settings.for_job_process(), job.config, handlers.program(job.kind)
            )
            self._children[job.id] = handle
            log.info("job %s started", job.id)

    def _do_duties(self) -> None:
        """Each domain's duty (``handlers.register_duty``) in its own transaction: one that fails is
        logged and retried on the next tick, and does not keep the others (or the claims) waiting."""
        for name, duty in self._duties.items():
            try:
                with transaction(self.session_factory) as session:
                    duty(session, self.settings)
            except Exception:
                log.exception("supervisor duty %s failed", name)

    def recover(self, startup: bool = False) -> list[state.Recovered]:
        with transaction(self.session_factory) as session:
            gone = gone_local_runs(session, self.settings, warn=startup)
            recovered = state.recover_stale(
                session, timedelta(seconds=self.settings.stale_after_seconds), gone_runs=gone
            )
        for r in recovered:
            log.warning("recovered job %s (%s): now %s", r.job_id, r.reason, r.status)
        return recovered

    def _reap(self) -> None:
        for job_id, child in list(self._children.items()):
            if child.running():
                continue
            del self._children[job_id]
            self._release(job_id, child.failure() or "the job process exited without ending the job")

    def _release(self, job_id: str, reason: str) -> None:
        """Settle a run that is over: a job it left running goes back to the queue (or fails); an
        ended job's files are removed here too, since its process may have died before doing so."""
        with transaction(self.session_factory) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return
            status = job.status
            if status == "running" and job.worker_id == self.worker_id:
                status = state.release(session, job, reason)
        if status in TERMINAL_STATUSES:
            remove_job_files(self.settings, job_id)

    def _enforce_cancels(self) -> None:
        if not self._children:
            return
        grace = timedelta(seconds=self.settings.cancel_grace_seconds)
        with self.session_factory() as session:
            overdue = session.scalars(
                select(Job.id).where(
                    Job.id.in_(list(self._children)),
                    Job.status == "running",
                    Job.cancel_requested_at < utcnow() - grace,
                )
            ).all()
        for job_id in overdue:
            log.warning("job %s ignored its cancel request; killing its run", job_id)
            self._children.pop(job_id).kill()
            self._release(job_id, "cancelled (the run was killed after the grace period)")
