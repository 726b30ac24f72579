"""Runs one claimed job to its end inside a job process (supervisor child or Ray task).

Before touching anything the run takes the job's run lock (``app.jobs.lifeline``), waiting for a
previous run that may still be writing, and only then checks that it still holds the claim. A
heartbeat thread proves the process alive and picks up cancel requests; if the job was taken away
(stale and handed on), or the run could not renew its claim for longer than the stale limit allows
(others may take the job over then), the process exits at once so two runs never race.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from typing import Any

import structlog

from app.core.errors import InputError
from app.core.private_files import make_private
from app.core.server_paths import hide_server_paths
from app.db.engine import make_engine, make_session_factory, transaction
from app.jobs import state
from app.jobs.context import Cancelled, Completion, JobContext
from app.jobs.files import job_work_dir, remove_job_files
from app.jobs.handlers import JobProgram
from app.jobs.lifeline import acquire_run_lock
from app.jobs.models import Job
from app.observability.logs import configure_logging
from app.settings import Settings

log = logging.getLogger(__name__)
LOST_CLAIM_EXIT_CODE = 75
LEASE_EXPIRED_EXIT_CODE = 76


def run_claimed_job(job_id: str, worker_id: str, settings_data: dict[str, Any], program: JobProgram) -> str:
    """Entry point of a job process. Returns the job's final status."""
    settings = Settings.model_validate(settings_data)
    configure_logging(settings.log_format)  # a spawned process (or Ray worker) starts with none
    structlog.contextvars.bind_contextvars(job_id=job_id)  # on every log line of the run
    make_private()  # owner-only files also where this process was not started by the service (Ray)
    run_lock = acquire_run_lock(job_work_dir(settings, job_id), timeout=settings.stale_after_seconds)
    if run_lock is None:
        raise RuntimeError(f"a previous run of job {job_id} was still alive, so this attempt did not start")
    with run_lock:  # held until the run is over (or, if the process dies, until the kernel drops it)
        return _run_locked(job_id, worker_id, settings, program)


def _run_locked(job_id: str, worker_id: str, settings: Settings, program: JobProgram) -> str:
    program.load_tables()  # before any flush: foreign keys name tables of other domains
    program.register_here()
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running" or job.worker_id != worker_id:
            engine.dispose()
            return "lost"
        ctx = JobContext(
            job_id=job.id,
            worker_id=worker_id,
            kind=job.kind,
            organisation_id=job.organisation_id,
            cohort_id=job.cohort_id,
            config=dict(job.config),
            attempt=job.attempt,
            settings=settings,
            session_factory=factory,
        )
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat_loop, args=(ctx, stop), daemon=True, name="heartbeat")
    beat.start()
    try:
        return _run(ctx, program, stop)
    finally:
        stop.set()
        engine.dispose()


def _run(ctx: JobContext, program: JobProgram, heartbeat_stop: threading.Event) -> str:
    status, error, completion = "failed", None, None
    try:
        completion = program.load_handler()(ctx)
        status = "succeeded"
    except Cancelled:
        status = "cancelled"
    except Exception as exc:  # any failure of the work itself ends the job with a readable reason
        error = _describe_failure(ctx, exc)
    heartbeat_stop.set()  # from here on this process gives the claim up itself
    if completion is not None:
        try:
            _finish(ctx, status, completion=completion)
        except state.LostClaim:
            return "lost"  # another worker holds the job now: its files are not ours to remove
        except Exception as exc:  # registration failed: the job fails and registers nothing
            status, error, completion = "failed", _describe_failure(ctx, exc), None
    try:
        if completion is None:
            _finish(ctx, status, error=error)
    except state.LostClaim:
        return "lost"
    remove_job_files(ctx.settings, ctx.job_id)  # checkpoints and staging are done with, whatever the end
    return status


def _describe_failure(ctx: JobContext, exc: Exception) -> str:
    """The job's public error (no server paths: clients read it); the log keeps the traceback."""
    if isinstance(exc, InputError):
        return hide_server_paths(str(exc), ctx.settings)
    log.error("job %s failed:\n%s", ctx.job_id, traceback.format_exc())
    return hide_server_paths(f"{type(exc).__name__}: {exc}", ctx.settings)


def _finish(ctx: JobContext, status: str, *, completion: Completion | None = None, error: str | None = None) -> None:
    """Mark the job ended; a completion's registration commits in the same transaction."""
    with transaction(ctx.session_factory) as session:
        result = None
        if completion is not None:
            result = dict(completion.result)
            if completion.register is not None:
                result.update(completion.register(session))
        state.finish(session, ctx.job_id, ctx.worker_id, status, error=error, result=result)


def _heartbeat_loop(ctx: JobContext, stop: threading.Event) -> None:
    """Renew the claim every ``heartbeat_seconds``. A renewal that fails is retried, but only while
    the last one that worked began less than ``lease`` ago: past the stale limit another supervisor
    may recover the job, and this run must be gone by then."""
    lease = ctx.settings.stale_after_seconds - 2 * ctx.settings.heartbeat_seconds
    renewed = time.monotonic()
    while not stop.wait(ctx.settings.heartbeat_seconds):
        began = time.monotonic()
        try:
            with transaction(ctx.session_factory) as session:
                if state.heartbeat(session, ctx.job_id, ctx.worker_id):
                    ctx.cancel_event.set()
            renewed = began
        except state.LostClaim:
            if stop.is_set():
                return
            log.error("job %s was taken from this worker; exiting", ctx.job_id)
            os._exit(LOST_CLAIM_EXIT_CODE)
        except Exception:  # a transient database error must not kill a long training run
            if stop.is_set():
                return
            if time.monotonic() - renewed > lease:
                log.exception("job %s could not renew its claim for %.0f s; exiting", ctx.job_id, lease)
                os._exit(LEASE_EXPIRED_EXIT_CODE)
            log.exception("heartbeat for job %s failed; will retry", ctx.job_id)
