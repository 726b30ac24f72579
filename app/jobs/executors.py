"""Where a claimed job's process runs. The supervisor owns claiming, cancels and recovery; an
executor only starts a run, says whether it is still going, and kills it.

``LocalProcessExecutor`` (embedded default) spawns a child process per job. ``app.jobs.ray_executor``
submits a Ray task instead (scale-out). Both run ``app.jobs.runner.run_claimed_job``; a local child
first ties its life to the process that started it (``app.jobs.lifeline``).
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from app.jobs.handlers import JobProgram
from app.jobs.lifeline import job_process_main


class RunHandle(Protocol):
    job_id: str

    def running(self) -> bool: ...

    def failure(self) -> str | None:
        """After the run ended: why it ended abnormally, or None if it exited cleanly."""

    def kill(self) -> None: ...


class Executor(Protocol):
    def launch(
        self,
        job_id: str,
        worker_id: str,
        settings_data: dict[str, Any],
        job_config: dict[str, Any],
        program: JobProgram,
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


class LocalProcessExecutor:
    """One spawned child process per job — never forked: the parent may hold CUDA state, database
    connections and threads that a fork would copy in a broken state. ``launch`` must be called from
    a thread that outlives the child (the supervisor's loop): the child dies with that thread."""

    def __init__(self) -> None:
        self._mp = multiprocessing.get_context("spawn")

    def launch(
        self,
        job_id: str,
        worker_id: str,
        settings_data: dict[str, Any],
        job_config: dict[str, Any],
        program: JobProgram,
    ) -> ProcessHandle:
        process = self._mp.Process(
            target=job_process_main,
            args=(os.getpid(), job_id, worker_id, settings_data, program),
            name=f"fairaudit-job-{job_id}",
        )
        process.start()
        return ProcessHandle(job_id, process)
