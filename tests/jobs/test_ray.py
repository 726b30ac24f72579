"""Jobs on a real local Ray cluster: the scale-out shape (PostgreSQL + Ray), so PostgreSQL only.

One single-node cluster (``ray start --head --block``, 2 CPUs and one logical GPU, in a temporary
folder) serves the whole module; the test process is its driver, as the API process is in
production. A run is held at a known point by locking the ``cohorts`` table, which the ingestion job
reads first: the Ray task is then running and blocked until the test lets it go, so cancels and
kills land mid-run every time.

Everything stays on loopback: Ray turns ``127.0.0.1`` into the machine's interface address (it
"resolves localhost to a remotely reachable IP") unless multi-node clustering is off, so the head
is started, and this driver connects, with it off; the head's usage-stats module would still ask
the cloud metadata service (169.254.169.254) and usage-stats.ray.io, so it gets a cluster config
naming a local provider and a loopback report URL. ``SocketWatch`` samples the sockets of every
process of the cluster and of this driver for the whole module, and the last test fails on any
address that is not loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from archives import TRAIN, make_zip, upload
from fastapi.testclient import TestClient
from socket_watch import SocketWatch
from sqlalchemy import select, text

from app.jobs.models import Job, JobEvent
from app.jobs.ray_executor import RayExecutor, RayRunHandle, settings_for_task, task_name
from app.jobs.supervisor import Supervisor
from app.main import create_app
from app.settings import Settings

try:
    import ray
except ImportError as exc:  # a missing or broken optional extra: nothing here can run
    pytest.skip(f"Ray cannot be imported ({exc}); pip install -e '.[ray]'", allow_module_level=True)

pytestmark = [pytest.mark.ray, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Ray's switch for a single-node cluster that keeps 127.0.0.1 as its address (see the docstring).
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@pytest.fixture(scope="module")
def sockets() -> Iterator[SocketWatch]:
    """Started before the cluster, stopped after it: every socket the module's processes open."""
    watch = SocketWatch().start()
    yield watch
    watch.stop()


def loopback_env(root: Path) -> dict[str, str]:
    (root / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")  # read from $HOME
    return {
        **os.environ,
        LOOPBACK_ONLY: "0",
        "HOME": str(root),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",  # the "usage stats are off" ping
    }


@pytest.fixture(scope="module")
def ray_address(sockets: SocketWatch) -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="fa-ray-"))  # short: Ray's socket paths must fit 107 bytes
    script = Path(sys.executable).with_name("ray")
    command = (
        [str(script)] if script.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    )
    port = _free_port()
    command += [
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--temp-dir={root / 'ray'}",
        "--num-cpus=2",
        "--num-gpus=1",  # logical only: lets the GPU rule be checked on a machine without one
        "--node-ip-address=127.0.0.1",  # keep all cluster traffic on loopback
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
    ]
    log_path = root / "ray-start.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=loopback_env(root))
    driver = pytest.MonkeyPatch()
    driver.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # read once, at import
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Ray runtime started" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        driver.undo()
        process.terminate()  # `ray start --block` stops every process it started
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ray_settings(settings: Settings, ray_address: str) -> Settings:
    return settings.model_copy(update={"ray_address": ray_address})


def ray_supervisor(settings: Settings, factory) -> Supervisor:
    return Supervisor(settings, factory, executor=RayExecutor(settings), capacity=settings.ray_max_concurrent_jobs)


def job_of(factory, job_id: str) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def drive(supervisor: Supervisor, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.tick()
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError("condition not reached")


def drive_to_end(supervisor: Supervisor, factory, job_id: str, timeout: float = 60.0) -> Job:
    drive(supervisor, lambda: job_of(factory, job_id).status not in ("queued", "running"), timeout)
    return job_of(factory, job_id)


@contextlib.contextmanager
def cohorts_locked(factory) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on ``cohorts``: a run that reaches its first read waits."""
    with factory() as session:
        session.execute(text("LOCK TABLE cohorts IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            session.rollback()


def runs_waiting(factory) -> int:
    """Other backends (the jobs' runs) waiting for a lock."""
    with factory() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        )
    return int(waiting or 0)


def run_is_waiting(factory) -> bool:
    return runs_waiting(factory) > 0


def worker_pid(job_id: str) -> int | None:
    """The Ray worker executing the job's task (Ray titles it ``ray::<task name>``)."""
    title = f"ray::{task_name(job_id)}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(title):
                    return int(entry.name)
    return None


def test_an_ingestion_job_runs_to_the_end_as_a_ray_task(client, keys, ray_settings, session_factory):
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(30)).json()
    job_id = cohort["ingest_job_id"]
    supervisor = ray_supervisor(ray_settings, session_factory)
    try:
        supervisor.tick()
        handle = supervisor._children[job_id]
        assert isinstance(handle, RayRunHandle)
        job = drive_to_end(supervisor, session_factory, job_id)
        # before stop(), which kills the children it still holds: the row ends a moment before the task returns
        outcome = ray.get(handle.ref, timeout=60)
    finally:
        supervisor.stop()
    assert (job.status, job.attempt, job.error) == ("succeeded", 1, None)
    assert outcome == "succeeded" and handle.failure() is None
    assert job.progress["total"] == 30  # progress written by the task itself
    assert client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()["status"] == "ready"


def test_the_app_dispatches_jobs_to_ray_when_an_address_is_set(keys, ray_settings):
    headers = keys.headers()
    with TestClient(create_app(ray_settings)) as client:  # the lifespan runs the supervisor
        supervisor = client.app.state.supervisor
        assert isinstance(supervisor.executor, RayExecutor)
        assert supervisor.capacity == ray_settings.ray_max_concurrent_jobs
        cohort = upload(client, headers, make_zip(20)).json()
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{cohort['ingest_job_id']}", headers=headers).json()["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.2)
        job = client.get(f"/v1/jobs/{cohort['ingest_job_id']}", headers=headers).json()
        assert job["status"] == "succeeded", job
        assert client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()["status"] == "ready"


def test_a_cancel_is_honoured_by_the_run_on_ray(client, keys, ray_settings, session_factory):
    settings = ray_settings.model_copy(update={"cancel_grace_seconds": 120.0})  # no kill: the run ends it
    headers = keys.headers()
    job_id = upload(client, headers, make_zip(20)).json()["ingest_job_id"]
    supervisor = ray_supervisor(settings, session_factory)
    try:
        with cohorts_locked(session_factory):
            drive(supervisor, lambda: run_is_waiting(session_factory))
            handle = supervisor._children[job_id]
            assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
            time.sleep(10 * settings.heartbeat_seconds)  # the run's heartbeat picks the request up
        job = drive_to_end(supervisor, session_factory, job_id)
        # before stop(), which kills the children it still holds: the row ends a moment before the task returns
        outcome = ray.get(handle.ref, timeout=60)
    finally:
        supervisor.stop()
    assert (job.status, job.attempt) == ("cancelled", 1)
    assert outcome == "cancelled"  # the task ended the job itself


def test_a_run_ignoring_its_cancel_is_killed_through_ray(client, keys, ray_settings, session_factory):
    headers = keys.headers()
    job_id = upload(client, headers, make_zip(20)).json()["ingest_job_id"]
    supervisor = ray_supervisor(ray_settings, session_factory)
    try:
        with cohorts_locked(session_factory):  # held throughout: the run never gets to its cancel check
            drive(supervisor, lambda: run_is_waiting(session_factory))
            handle = supervisor._children[job_id]
            pid = worker_pid(job_id)
            assert pid is not None
            assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
            drive(supervisor, lambda: job_id not in supervisor._children, timeout=30)
            assert not handle.running()
            assert job_of(session_factory, job_id).status == "cancelled"
    finally:
        supervisor.stop()
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(handle.ref)
    assert handle.failure() == "the job's Ray task was cancelled"
    deadline = time.monotonic() + 10
    while worker_pid(job_id) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_pid(job_id) is None  # Ray killed the worker process


def test_a_ray_worker_killed_mid_run_is_released_and_retried(client, keys, ray_settings, session_factory):
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(20)).json()
    job_id = cohort["ingest_job_id"]
    supervisor = ray_supervisor(ray_settings, session_factory)
    try:
        with cohorts_locked(session_factory):
            drive(supervisor, lambda: run_is_waiting(session_factory))
            handle = supervisor._children[job_id]
            pid = worker_pid(job_id)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # as the OOM killer, or a lost node, would
            drive(supervisor, lambda: not handle.running(), timeout=30)
        job = drive_to_end(supervisor, session_factory, job_id, timeout=90)
    finally:
        supervisor.stop()
    assert (job.status, job.attempt) == ("succeeded", 2), (job.status, job.attempt, job.error)
    assert handle.failure() == "the Ray worker running the job died (killed or crashed)"
    with session_factory() as session:
        reasons = session.scalars(
            select(JobEvent.data["reason"].as_string()).where(JobEvent.job_id == job_id, JobEvent.type == "state")
        ).all()
    assert "the Ray worker running the job died (killed or crashed)" in reasons
    assert client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()["status"] == "ready"


def test_gpu_rule(ray_settings):
    auto = RayExecutor(ray_settings)  # the test cluster reports one (logical) GPU
    assert auto.gpus_for({"device": "auto"}) == auto.gpus_for({"device": "cuda"}) == 1.0
    assert auto.gpus_for({"device": "cpu"}) == auto.gpus_for({"cohort_id": "c"}) == 0.0
    half = RayExecutor(ray_settings.model_copy(update={"ray_gpus_per_job": 0.5}))
    assert half.gpus_for({"device": "cuda"}) == 0.5 and half.gpus_for({"device": "cpu"}) == 0.0
    none = RayExecutor(ray_settings.model_copy(update={"ray_gpus_per_job": 0}))
    assert none.gpus_for({"device": "cuda"}) == 0.0


def test_tasks_get_absolute_paths(ray_settings):
    relative = ray_settings.model_copy(
        update={"data_dir": Path("var/data"), "model_dir": Path("models"), "database_url": "sqlite:///var/x.db"}
    )
    shipped = settings_for_task(relative.model_dump(mode="json"))
    assert shipped["data_dir"] == str(Path.cwd() / "var/data") and shipped["model_dir"] == str(Path.cwd() / "models")
    assert shipped["database_url"] == f"sqlite:///{Path.cwd() / 'var/x.db'}"
    assert settings_for_task(ray_settings.model_dump(mode="json"))["database_url"] == ray_settings.database_url


def test_the_children_of_a_study_run_at_the_same_time_on_ray(client, keys, ray_settings, session_factory):
    """Both folds' training runs are held at their first read of ``cohorts`` until both are waiting
    there: two Ray tasks in progress at once, not one after the other. Then the study completes."""
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(80)).json()
    supervisor = ray_supervisor(ray_settings, session_factory)
    try:
        assert drive_to_end(supervisor, session_factory, cohort["ingest_job_id"]).status == "succeeded"
        config = {**TRAIN, "epochs": 1, "device": "cpu"}  # no GPU asked for: the cluster's one would serialise them
        body = {"cohort_id": cohort["id"], "configs": [config], "folds": 2}
        study = client.post("/v1/studies", headers=headers, json=body).json()
        children = [c["job_id"] for c in study["children"]]
        assert len(children) == 2
        with cohorts_locked(session_factory):
            drive(supervisor, lambda: runs_waiting(session_factory) == 2, timeout=120)
            assert all(isinstance(supervisor._children[job_id], RayRunHandle) for job_id in children)
        drive(
            supervisor,
            lambda: client.get(f"/v1/studies/{study['id']}", headers=headers).json()["status"] != "running",
            timeout=400,
        )
    finally:
        supervisor.stop()
    done = client.get(f"/v1/studies/{study['id']}", headers=headers).json()
    assert done["status"] == "succeeded", done["error"]
    runs = [job_of(session_factory, job_id) for job_id in children]
    assert all(job.status == "succeeded" and job.attempt == 1 for job in runs)
    assert max(job.started_at for job in runs) < min(job.finished_at for job in runs), "their runs overlapped"


def test_the_cluster_and_its_driver_use_loopback_only(client, keys, ray_settings, session_factory, sockets):
    """Last in the module: the watch has sampled every test before this one; one more job makes sure
    a driver, a worker and the head were all talking while it looked."""
    job_id = upload(client, keys.headers(), make_zip(10)).json()["ingest_job_id"]
    supervisor = ray_supervisor(ray_settings, session_factory)
    try:
        assert drive_to_end(supervisor, session_factory, job_id).status == "succeeded"
    finally:
        supervisor.stop()
    sockets.sample()
    assert sockets.samples > 1 and sockets.loopback_seen > 0, "the watch saw no socket at all"
    assert not sockets.offending, "sockets off loopback:\n" + sockets.report()
