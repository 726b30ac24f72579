"""Job processes never outlive the process that started them, and two runs of one job never overlap.

* ``die_with_parent``: Linux's ``PR_SET_PDEATHSIG`` asks the kernel to SIGKILL this process when its
  parent dies, so a server killed outright (``kill -9``, the OOM killer) takes its job processes,
  and their decode pools, with it. The signal fires when the parent *thread* that started the
  process exits, so processes are started from a thread that lives as long as they should (the
  supervisor's loop; the job's main thread for its pool). A ``spawn`` child must ask for it itself,
  first thing: this module imports nothing heavy, and a parent that died before the request took
  effect is caught by comparing ``getppid()``.
* The *run lock*: every run of a job holds an exclusive ``flock`` on ``<work dir>/.run.lock`` for
  its whole life; the kernel drops it when the process ends, however it ends. A new attempt waits
  for it before touching the job's files, and recovery re-queues a job of a dead server only when
  nobody holds it: proof that the old run is gone, not just its parent.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.jobs.handlers import JobProgram

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PARENT_GONE_EXIT_CODE = 70
RUN_LOCK_NAME = ".run.lock"


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(PARENT_GONE_EXIT_CODE)


def job_process_main(
    parent_pid: int, job_id: str, worker_id: str, settings_data: dict[str, Any], program: JobProgram
) -> None:
    """Target of a local job process: arm the lifeline before importing anything heavy."""
    die_with_parent(parent_pid)
    from app.jobs.runner import run_claimed_job

    run_claimed_job(job_id, worker_id, settings_data, program)


def run_lock_path(work_dir: Path) -> Path:
    return work_dir / RUN_LOCK_NAME


def acquire_run_lock(work_dir: Path, timeout: float, poll: float = 0.2) -> IO[bytes] | None:
    """Hold the job's run lock (kept until the returned file is closed or the process ends), waiting up
    to ``timeout`` seconds for a previous run to end; None if it is still alive then. On a filesystem
    without locks the run goes ahead unlocked (the database claim still fences it)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    handle = run_lock_path(work_dir).open("ab")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(poll)
        except OSError as exc:  # ENOLCK / EOPNOTSUPP: no locks on this filesystem
            log.warning("cannot lock %s (%s); running without the run lock", handle.name, exc)
            return handle


def run_is_gone(work_dir: Path) -> bool:
    """No process holds the job's run lock (a run that never took it never wrote the job's files)."""
    try:
        handle = run_lock_path(work_dir).open("rb")
    except FileNotFoundError:
        return True
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # no locks here: fall back to the caller's other evidence
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True
