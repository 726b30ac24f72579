"""The embedded supervisor with real child processes: crashes, restarts and cancels."""

from __future__ import annotations

import time

from archives import make_zip, upload
from sqlalchemy import select

from app.db.engine import transaction
from app.jobs.models import Job
from app.jobs.supervisor import Supervisor


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError("condition not reached")


def job_of(factory, job_id: str) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_killed_job_process_is_retried_and_succeeds(client, keys, settings, session_factory):
    cohort = upload(client, keys.headers(), make_zip(40)).json()
    job_id = cohort["ingest_job_id"]
    supervisor = Supervisor(settings, session_factory)
    try:
        supervisor.tick()  # claims the ingestion job and spawns its process
        (child,) = supervisor._children.values()
        child.process.kill()  # SIGKILL, as the OOM killer would
        child.process.join()

        def finished() -> bool:
            supervisor.tick()
            return job_of(session_factory, job_id).status not in ("queued", "running")

        wait_for(finished, timeout=120, step=0.2)
    finally:
        supervisor.stop()
    job = job_of(session_factory, job_id)
    assert job.status == "succeeded" and job.attempt == 2, (job.status, job.attempt, job.error)
    assert client.get(f"/v1/cohorts/{cohort['id']}", headers=keys.headers()).json()["status"] == "ready"


def test_jobs_left_running_by_a_dead_server_are_recovered_at_start(client, keys, settings, session_factory, run_jobs):
    cohort = upload(client, keys.headers(), make_zip(20)).json()
    import socket

    with transaction(session_factory) as session:
        job = session.get(Job, cohort["ingest_job_id"])
        # as if a previous server process (pid 2**22 + 1 never exists) had claimed it and died
        job.status, job.worker_id, job.attempt = "running", f"{socket.gethostname()}:{2**22 + 1}:dead", 1
    supervisor = Supervisor(settings, session_factory)
    recovered = supervisor.recover(startup=True)
    assert [r.job_id for r in recovered] == [cohort["ingest_job_id"]]
    assert job_of(session_factory, cohort["ingest_job_id"]).status == "queued"
    run_jobs()
    assert job_of(session_factory, cohort["ingest_job_id"]).status == "succeeded"


def test_two_supervisors_share_a_queue_and_run_each_job_once(client, keys, settings, session_factory):
    headers = keys.headers()
    ids = [upload(client, headers, make_zip(10)).json()["ingest_job_id"] for _ in range(4)]
    first, second = Supervisor(settings, session_factory), Supervisor(settings, session_factory)
    try:

        def all_done() -> bool:
            first.tick()
            second.tick()
            with session_factory() as session:
                statuses = session.scalars(select(Job.status).where(Job.id.in_(ids))).all()
            return all(s == "succeeded" for s in statuses)

        wait_for(all_done, timeout=120, step=0.3)
    finally:
        first.stop()
        second.stop()
    with session_factory() as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(ids))).all()
    assert all(j.attempt == 1 for j in jobs), [(j.id, j.attempt) for j in jobs]
