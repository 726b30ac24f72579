"""Scale-out executor: each claimed job runs as a Ray task on a Ray cluster.

Selected by ``FAIRAUDIT_RAY_ADDRESS`` (see ``app.main``). The supervisor still claims jobs, enforces
cancels and recovers stale runs exactly as with local processes; only *where* the run happens
changes. The task calls ``app.jobs.runner.run_claimed_job`` like a local job process does, so it
heartbeats, reports progress and finishes the job in the shared database itself.

Resources (a clear rule, so a job never waits for a GPU nobody asked for):

* every job task asks for ``ray_cpus_per_job`` CPUs;
* only jobs whose config names a device (training) may take a GPU, and never with ``device: cpu``;
  with ``device: auto`` or ``cuda`` the task asks for ``ray_gpus_per_job`` GPUs, or, when that is
  unset, one GPU if the cluster reports any GPU at launch time and none otherwise (then ``cuda``
  fails with a readable error, as it would on a machine without one). Set ``ray_gpus_per_job``
  explicitly on an autoscaling cluster whose GPU nodes only appear on demand.

A task asking for more than any node has (a GPU on a cluster without one) waits, and Ray reports it
infeasible; its job shows ``running`` without progress until a node that fits joins or it is
cancelled.

Each task runs in a fresh Ray worker process (``max_calls=1``), as each local job runs in a fresh
spawned child: CUDA memory, threads and open files of one job never leak into the next. Ray's own
retries are off (``max_retries=0``): a task that dies (its worker killed, out of memory, its node
lost) surfaces in ``RayRunHandle.failure()`` and the supervisor queues the job again, counting the
attempt, and the next attempt resumes from its checkpoint. Cancels that the job ignores past the
grace period are enforced with ``ray.cancel(ref, force=True)``, which kills the worker.

What a real cluster needs (a local ``ray start`` from this checkout needs nothing more):

* every node runs the same Python and Ray versions as the API process, with this package installed
  (``pip install 'fairaudit[ray]'`` at the API's version, or a container image built from it), so
  the workers can import ``app`` and its dependencies (torch, onnxruntime, …). For a development
  cluster whose nodes have the dependencies but not this code, ``FAIRAUDIT_RAY_SHIP_PACKAGE=true``
  uploads the API's ``app`` package with the connection (Ray ``runtime_env`` ``py_modules``);
* every node reaches the database at ``FAIRAUDIT_DATABASE_URL`` (PostgreSQL: SQLite is a local file
  and cannot be shared) and sees ``data_dir`` and ``model_dir`` at the same paths as the API (a
  shared volume): tasks run with the API's settings (relative folders made absolute against the API's
  working directory), read uploads from and write cohorts, checkpoints and models to those folders;
* the API process is the owner (the Ray *driver*) of its job tasks: if it dies, Ray ends its tasks,
  and the next supervisor recovers the jobs (stale heartbeat) and runs them again. Ray also ends a
  driver that loses its cluster's GCS for longer than Ray's reconnect timeout (60 s by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.jobs.handlers import JobProgram
from app.jobs.runner import run_claimed_job
from app.settings import Settings

log = logging.getLogger(__name__)

NAMESPACE = "fairaudit"
KILL_WAIT_SECONDS = 10.0
RESULT_WAIT_SECONDS = 30.0


def task_name(job_id: str) -> str:
    """The Ray task's name; a worker executing it is titled ``ray::<name>`` in ``ps``."""
    return f"fairaudit-job-{job_id}"


def _run_job_task(job_id: str, worker_id: str, settings_data: dict[str, Any], program: JobProgram) -> str:
    """Body of the Ray task (pickled by reference: the worker imports this module)."""
    return run_claimed_job(job_id, worker_id, settings_data, program)


def settings_for_task(settings_data: dict[str, Any]) -> dict[str, Any]:
    """The API's settings as a task must see them: Ray workers do not run in the API's working
    directory, so relative folders (the embedded default ``var/data``) and a relative SQLite path are
    made absolute here, where they mean what the API means by them."""
    data = dict(settings_data)
    for key in ("data_dir", "model_dir"):
        data[key] = str(Path(data[key]).absolute())
    url = str(data["database_url"])
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        data["database_url"] = "sqlite:///" + Path(url.removeprefix("sqlite:///")).absolute().as_posix()
    return data


def describe_ray_failure(exc: BaseException) -> str:
    """One readable line for why a job's Ray task ended abnormally."""
    from ray import exceptions as rx

    if isinstance(exc, rx.TaskCancelledError):
        return "the job's Ray task was cancelled"
    if isinstance(exc, rx.OutOfMemoryError):
        return "Ray killed the job's worker: its node was running out of memory"
    if isinstance(exc, rx.NodeDiedError | rx.LocalRayletDiedError):
        return "the Ray node running the job was lost"
    if isinstance(exc, rx.WorkerCrashedError):
        return "the Ray worker running the job died (killed or crashed)"
    if isinstance(exc, rx.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"the job's Ray task raised {type(cause).__name__}: {_first_line(cause)}"
    if isinstance(exc, rx.GetTimeoutError):
        return "the job's Ray task ended but its result could not be read in time"
    return f"the job's Ray task failed ({type(exc).__name__}: {_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:300]


@dataclass
class RayRunHandle:
    """One job's Ray task. ``ref`` is None when the task could not even be submitted."""

    job_id: str
    ref: Any
    ray: Any
    submit_error: str | None = None

    def running(self) -> bool:
        if self.ref is None:
            return False
        ready, _ = self.ray.wait([self.ref], timeout=0, fetch_local=False)
        return not ready

    def failure(self) -> str | None:
        if self.ref is None:
            return self.submit_error
        try:
            self.ray.get(self.ref, timeout=RESULT_WAIT_SECONDS)
        except Exception as exc:
            return describe_ray_failure(exc)
        return None

    def kill(self) -> None:
        if self.ref is None:
            return
        try:
            self.ray.cancel(self.ref, force=True)
        except Exception:  # already finished, or the cluster is gone: nothing left to kill here
            log.warning("cancelling the Ray task of job %s failed", self.job_id, exc_info=True)
        self.ray.wait([self.ref], timeout=KILL_WAIT_SECONDS, fetch_local=False)


class RayExecutor:
    """Runs each claimed job as a Ray task on the cluster at ``settings.ray_address``."""

    def __init__(self, settings: Settings) -> None:
        if not settings.ray_address:
            raise ValueError("RayExecutor needs settings.ray_address (FAIRAUDIT_RAY_ADDRESS)")
        if settings.is_sqlite:
            log.warning("Ray jobs with SQLite work only on a single-node cluster on this machine; use PostgreSQL")
        self.settings = settings
        self._ray: Any = None
        self._remote: Any = None
        self._connected_here = False

    def connect(self) -> Any:
        """Connect to the cluster (once per process); returns the ``ray`` module."""
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError(
                "FAIRAUDIT_RAY_ADDRESS is set but Ray is not installed: pip install 'fairaudit[ray]'"
            ) from exc
        if not ray.is_initialized():
            runtime_env: dict[str, Any] = {}
            if self.settings.ray_ship_package:
                import app

                runtime_env["py_modules"] = [str(Path(app.__file__).parent)]
            ray.init(
                address=self.settings.ray_address,
                namespace=NAMESPACE,
                ignore_reinit_error=True,
                runtime_env=runtime_env or None,
            )
            self._connected_here = True
        self._remote = ray.remote(max_calls=1)(_run_job_task)  # a fresh worker process per job
        self._ray = ray
        log.info("job executor: Ray cluster at %s", self.settings.ray_address)
        return ray

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (Ray ends the tasks it owns)."""
        if self._ray is not None and self._connected_here:
            self._ray.shutdown()
        self._ray, self._remote, self._connected_here = None, None, False

    def gpus_for(self, job_config: dict[str, Any]) -> float:
        """GPUs a job's task asks for (see the module docstring for the rule)."""
        if job_config.get("device") not in ("auto", "cuda"):
            return 0.0
        if self.settings.ray_gpus_per_job is not None:
            return float(self.settings.ray_gpus_per_job)
        cluster_gpus = float(self.connect().cluster_resources().get("GPU", 0))
        return 1.0 if cluster_gpus > 0 else 0.0

    def launch(
        self,
        job_id: str,
        worker_id: str,
        settings_data: dict[str, Any],
        job_config: dict[str, Any],
        program: JobProgram,
    ) -> RayRunHandle:
        try:
            ray = self.connect()
            gpus = self.gpus_for(job_config)
            ref = self._remote.options(
                name=task_name(job_id),
                num_cpus=self.settings.ray_cpus_per_job,
                num_gpus=gpus,
                max_retries=0,
                retry_exceptions=False,
            ).remote(job_id, worker_id, settings_for_task(settings_data), program)
        except Exception as exc:  # the supervisor releases the job for a later attempt
            log.exception("could not submit job %s to Ray", job_id)
            return RayRunHandle(job_id, None, self._ray, f"could not submit the job to Ray: {_first_line(exc)}")
        log.info("job %s submitted to Ray (%s CPU, %s GPU)", job_id, self.settings.ray_cpus_per_job, gpus)
        return RayRunHandle(job_id, ref, ray)
