"""Where a claimed job's process runs. The supervisor owns claiming, cancels and recovery; an
executor only starts a run, says whether it is still going, and kills it.

``LocalProcessExecutor`` (embedded default) spawns a child process per job. ``app.jobs.ray_executor``
submits a Ray task instead (scale-out). Both run ``app.jobs.runner.run_claimed_job``.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from app.jobs.runner import run_claimed_job

PR_SET_PDEATHSIG = 1


class RunHandle(Protocol):
    job_id: str

    def running(self) -> bool: ...

    def failure(self) -> str | None:
        """After the run ended: why it ended abnormally, or None if it exited cleanly."""

    def kill(self) -> None: ...


class Executor(Protocol):
    def launch(
        self, job_id: str, worker_id: str, settings_data: dict[str, Any], job_config: dict[str, Any]
    ) -> RunHandle: ...


@dataclass
class ProcessHandle:
    job_id: str
    process: BaseProcess

    def running(self) -> bool:
        return self.process.is_alive()

    def failure(self) -> str | None:
        self.process.join()
        code = self.process.exitcode
        return None if code == 0 else f"the job process exited unexpectedly (exit code {code})"

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=10)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so a server killed outright leaves no
    orphan run behind to race the run that recovery starts."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _child_main(parent_pid: int, job_id: str, worker_id: str, settings_data: dict[str, Any]) -> None:
    _die_with_parent(parent_pid)
    run_claimed_job(job_id, worker_id, settings_data)


class LocalProcessExecutor:
    """One spawned child process per job — never forked: the parent may hold CUDA state, database
    connections and threads that a fork would copy in a broken state."""

    def __init__(self) -> None:
        self._mp = multiprocessing.get_context("spawn")

    def launch(
        self, job_id: str, worker_id: str, settings_data: dict[str, Any], job_config: dict[str, Any]
    ) -> ProcessHandle:
        process = self._mp.Process(
            target=run_claimed_job, args=(job_id, worker_id, settings_data), name=f"fairaudit-job-{job_id}"
        )
        process.start()
        return ProcessHandle(job_id, process)
