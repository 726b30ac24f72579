"""Job processes die with the server that started them, and a job is never run twice at once: real
server processes killed with SIGKILL, real job processes and decode pools, real file locks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from archives import make_zip, upload
from live_server import start_server, wait_for
from processes import alive, descendants, describe
from sqlalchemy import select

from app.db.engine import transaction
from app.jobs.files import job_work_dir
from app.jobs.lifeline import acquire_run_lock, run_is_gone
from app.jobs.models import Job, JobEvent
from app.jobs.runner import LEASE_EXPIRED_EXIT_CODE
from app.jobs.supervisor import Supervisor

GONE_WITHIN = 15.0  # seconds; SIGKILL from the kernel lands at once, this only bounds a hang


def job_of(factory, job_id: str) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def run_attempts(factory, job_id: str) -> list[int]:
    """The attempt number of every run that started, in order."""
    with factory() as session:
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "state").order_by(JobEvent.id)
        ).all()
    return [e.data["attempt"] for e in events if e.data.get("status") == "running" and "worker" in e.data]


def assert_all_gone(processes, within: float = GONE_WITHIN) -> None:
    deadline = time.monotonic() + within
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive(processes)
    assert not left, f"still running {within:.0f} s after the server was killed:\n{describe(left)}"


def test_a_killed_server_takes_its_ingestion_run_and_decode_pool_along_and_the_restart_runs_it_once(
    client, keys, settings, session_factory
):
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(40)).json()
    job_id = cohort["ingest_job_id"]
    # A decoder opening a FIFO waits for a writer: the run is held mid-decode with its pool alive (each
    # decoding process opens the kept zip itself; the job's own process only names it).
    folder = settings.data_dir / "cohorts" / cohort["id"]
    held = folder / "archive.zip"
    original = held.read_bytes()
    held.unlink()
    os.mkfifo(held)
    server = start_server(settings, extra_env={"FAIRAUDIT_INGEST_WORKERS": "2"})
    try:

        def run_with_its_pool():
            family = descendants(server.pid)
            return family if any(len(p.children()) >= 2 for p in alive(family)) else None

        family = wait_for(run_with_its_pool, timeout=60)
        assert job_of(session_factory, job_id).status == "running"
        server.kill()
        assert_all_gone(family)
        job = job_of(session_factory, job_id)
        assert (job.status, job.attempt) == ("running", 1), "nobody may touch the job while no server runs"

        held.unlink()
        held.write_bytes(original)
        server = start_server(settings, server.port)
        wait_for(lambda: job_of(session_factory, job_id).status not in ("queued", "running"), timeout=120)
    finally:
        server.stop()
    job = job_of(session_factory, job_id)
    assert (job.status, job.attempt, job.error) == ("succeeded", 2, None)
    assert run_attempts(session_factory, job_id) == [1, 2], "exactly one new run after the restart"
    assert client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()["status"] == "ready"
    assert not job_work_dir(settings, job_id).exists()
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "cache",
        "cache/images.u8",
        "cache/items.json",
    ], "the rerun decoded from the kept archive, then released it"


HOLD_RUN_LOCK = """
import sys, time
from pathlib import Path
from app.jobs.lifeline import acquire_run_lock
handle = acquire_run_lock(Path(sys.argv[1]), timeout=0)
print("held" if handle else "busy", flush=True)
time.sleep(300)
"""


def test_recovery_waits_until_a_run_that_outlived_its_server_is_gone(client, keys, settings, session_factory):
    cohort = upload(client, keys.headers(), make_zip(10)).json()
    job_id = cohort["ingest_job_id"]
    with transaction(session_factory) as session:
        job = session.get(Job, job_id)
        # claimed by a server that died (pid 2**22 + 1 never exists) ...
        job.status, job.worker_id, job.attempt = "running", f"{socket.gethostname()}:{2**22 + 1}:dead", 1
    work_dir = job_work_dir(settings, job_id)
    # ... whose job process lives on (no PR_SET_PDEATHSIG, say) and holds the run lock
    orphan = subprocess.Popen([sys.executable, "-c", HOLD_RUN_LOCK, str(work_dir)], stdout=subprocess.PIPE)
    try:
        assert orphan.stdout is not None and orphan.stdout.readline() == b"held\n"
        supervisor = Supervisor(settings, session_factory)
        assert supervisor.recover(startup=True) == []
        assert job_of(session_factory, job_id).status == "running"
        assert not run_is_gone(work_dir)
        assert acquire_run_lock(work_dir, timeout=0.5) is None, "a new attempt must wait for the old run"
    finally:
        orphan.kill()
        orphan.wait(timeout=30)
    assert run_is_gone(work_dir)
    assert [r.job_id for r in supervisor.recover()] == [job_id]
    assert job_of(session_factory, job_id).status == "queued"


LOSE_THE_DATABASE = """
import sys
from app.db.engine import make_engine, make_session_factory
from app.jobs.context import JobContext
from app.jobs.runner import _heartbeat_loop
from app.settings import Settings
import threading

settings = Settings(database_url=sys.argv[1], heartbeat_seconds=0.1, stale_after_seconds=1.0)
ctx = JobContext(
    job_id="job_x", worker_id="w", kind="ingest", organisation_id="o", cohort_id=None, config={}, attempt=1,
    settings=settings, session_factory=make_session_factory(make_engine(settings.database_url)),
)
_heartbeat_loop(ctx, threading.Event())
"""


def test_a_run_that_cannot_renew_its_claim_stops_before_others_may_take_the_job():
    """The database is unreachable from the run (port 1: nothing listens): past its lease (0.8 s here)
    the run exits by itself, before a supervisor that can still reach the database calls it stale."""
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    result = subprocess.run([sys.executable, "-c", LOSE_THE_DATABASE, unreachable], capture_output=True, timeout=60)
    assert result.returncode == LEASE_EXPIRED_EXIT_CODE, result.stderr.decode()[-2000:]
