"""Training jobs under faults, with real processes: a SIGKILLed child, a server killed outright and
restarted, a cancel. Each ends with exactly the model versions it should have and no orphan files."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from archives import make_zip, upload
from live_server import start_server, wait_for
from processes import alive, descendants, describe
from sqlalchemy import func, select

from app.jobs.models import Job, JobEvent
from app.jobs.supervisor import Supervisor
from app.serving.models import ModelVersion

TRAIN = {
    "method": "fair_multi_exit",
    "sensitive_attributes": ["sex"],
    "backbone": "small",
    "batch_size": 16,
    "lr": 0.001,
    "seed": 5,
    "patience": None,
    "augment": {"hflip": False, "vflip": False, "rotate_degrees": 0, "brightness": 0, "contrast": 0},
}


def job_row(factory, job_id: str) -> Job:
    with factory() as session:
        return session.get(Job, job_id)


def model_count(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(ModelVersion))


def start_training(client, headers, run_jobs, epochs: int) -> str:
    cohort = upload(client, headers, make_zip(160)).json()
    run_jobs()
    response = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort["id"], "epochs": epochs, **TRAIN})
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def epochs_done(factory, job_id: str) -> int:
    return len(job_row(factory, job_id).history)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the embedded shape; PG below
def test_sigkilled_training_resumes_from_its_checkpoint(client, keys, settings, session_factory, run_jobs):
    headers = keys.headers()
    job_id = start_training(client, headers, run_jobs, epochs=4)
    supervisor = Supervisor(settings, session_factory)
    try:

        def two_epochs_done() -> bool:
            supervisor.tick()
            return epochs_done(session_factory, job_id) >= 2

        wait_for(two_epochs_done, timeout=180)
        (child,) = supervisor._children.values()
        os.kill(child.process.pid, signal.SIGKILL)

        def finished() -> bool:
            supervisor.tick()
            return job_row(session_factory, job_id).status not in ("queued", "running")

        wait_for(finished, timeout=300)
    finally:
        supervisor.stop()
    job = job_row(session_factory, job_id)
    assert job.status == "succeeded" and job.attempt == 2, (job.status, job.error)
    assert [h["epoch"] for h in job.history] == [1, 2, 3, 4], "each epoch recorded once across both attempts"
    with session_factory() as session:
        second_run = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "progress").order_by(JobEvent.id)
        ).all()
        attempts = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "state").order_by(JobEvent.id)
        ).all()
    restart_at = next(e.id for e in attempts if e.data.get("attempt") == 2)
    resumed_epochs = [
        e.data["epoch"] for e in second_run if e.id > restart_at and e.data.get("phase") in ("train", "validate")
    ]
    assert resumed_epochs and min(resumed_epochs) >= 2, "the second attempt must resume, not start over"
    assert model_count(session_factory) == 1
    assert not (settings.data_dir / "jobs" / job_id).exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cancel_stops_a_running_job_within_seconds_and_leaves_nothing(
    client, keys, settings, session_factory, run_jobs
):
    headers = keys.headers()
    job_id = start_training(client, headers, run_jobs, epochs=200)
    supervisor = Supervisor(settings, session_factory)
    try:

        def running_epoch() -> bool:
            supervisor.tick()
            return epochs_done(session_factory, job_id) >= 1

        wait_for(running_epoch, timeout=180)
        asked = time.monotonic()
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202

        def cancelled() -> bool:
            supervisor.tick()
            return job_row(session_factory, job_id).status == "cancelled"

        wait_for(cancelled, timeout=10)
        assert time.monotonic() - asked < 10
    finally:
        supervisor.stop()
    assert model_count(session_factory) == 0
    assert not (settings.data_dir / "jobs" / job_id).exists()
    assert not settings.model_dir.exists() or not list(Path(settings.model_dir).iterdir())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the scale-out database
def test_server_killed_mid_training_takes_its_run_along_and_the_restart_finishes_the_job_once(
    client, keys, settings, session_factory, run_jobs
):
    headers = keys.headers()
    job_id = start_training(client, headers, run_jobs, epochs=4)
    server = start_server(settings)
    try:
        wait_for(lambda: epochs_done(session_factory, job_id) >= 2, timeout=180)
        family = descendants(server.pid)  # the job process (and multiprocessing's resource tracker)
        assert family
        server.kill()  # no shutdown hook runs: the job is left "running"
        deadline = time.monotonic() + 15  # SIGKILL lands at once; this bounds a hang
        while alive(family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(family), "the training run outlived its server:\n" + describe(alive(family))
        assert job_row(session_factory, job_id).status == "running"
        server = start_server(settings, server.port)
        wait_for(lambda: job_row(session_factory, job_id).status not in ("queued", "running"), timeout=300)
    finally:
        server.stop()
    job = job_row(session_factory, job_id)
    assert job.status == "succeeded" and job.attempt == 2, (job.status, job.attempt, job.error)
    assert [h["epoch"] for h in job.history] == [1, 2, 3, 4], "each epoch recorded once across both attempts"
    with session_factory() as session:
        runs = session.scalars(
            select(JobEvent.data["attempt"].as_integer()).where(
                JobEvent.job_id == job_id, JobEvent.type == "state", JobEvent.data["status"].as_string() == "running"
            )
        ).all()
    assert [a for a in runs if a is not None] == [1, 2], "exactly one run after the restart"
    assert model_count(session_factory) == 1
