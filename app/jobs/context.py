"""What a job handler sees while it runs: its config, progress reporting and the cancel flag.

Handlers are plain functions ``handler(ctx) -> Completion``; they run in a job process (a child of
the supervisor, or a Ray task) and know nothing of how they were scheduled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import transaction
from app.jobs import state
from app.jobs.files import job_work_dir
from app.settings import Settings


class Cancelled(Exception):
    """Raised by a handler that noticed a cancel request; the job ends ``cancelled``."""


@dataclass
class Completion:
    """A handler's successful outcome. ``register`` runs in the same transaction that marks the job
    ``succeeded`` (model version + evaluation appear together with the success, or not at all)."""

    result: dict[str, Any]
    register: Callable[[Session], dict[str, Any]] | None = None


@dataclass
class JobContext:
    job_id: str
    worker_id: str
    kind: str
    organisation_id: str
    cohort_id: str | None
    config: dict[str, Any]
    attempt: int
    settings: Settings
    session_factory: sessionmaker[Session]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    min_progress_interval: float = 1.0
    _last_progress: float = 0.0

    @property
    def work_dir(self) -> Path:
        """Per-job folder that survives retries: checkpoints live here so a new attempt resumes."""
        path = job_work_dir(self.settings, self.job_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def should_cancel(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def progress(
        self, progress: dict[str, Any], *, history_entry: dict[str, Any] | None = None, force: bool = False
    ) -> None:
        """Store progress, at most once per ``min_progress_interval`` unless it closes an epoch."""
        now = time.monotonic()
        if not force and history_entry is None and now - self._last_progress < self.min_progress_interval:
            return
        self._last_progress = now
        with transaction(self.session_factory) as session:
            state.report_progress(session, self.job_id, self.worker_id, progress, history_entry)
