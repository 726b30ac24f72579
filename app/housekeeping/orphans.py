"""Removing work folders that no row owns: what a crash (``kill -9`` mid-upload, a job process killed
between writing and committing) leaves on disk.

Run at start-up and every ``orphan_sweep_interval_seconds`` by ``OrphanSweeper``. Only the folders
named below are ever considered: an id-shaped name directly under one of the service's own folders,
never a symbolic link, never anything else in ``data_dir`` or ``model_dir``. One is removed only when
all of these hold:

* no row owns it (per area, below; a row still in use owns its folder);
* no work in this process is writing it (``live_work``: an upload before its commit);
* nothing in it changed for ``orphan_min_age_seconds``, which covers writers this process cannot
  see (job processes, other replicas): they commit within moments of their last write.

Folders are listed before the database is read, and each area's rows are read in one statement, so
a folder created and committed meanwhile is either not listed or owned by the time it is judged.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.cohorts.models import Cohort
from app.db.live_work import live_paths
from app.fairness.models import Evaluation
from app.jobs.models import TERMINAL_STATUSES, Job
from app.serving.models import ModelVersion
from app.settings import Settings

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
BATCH = 500
Owners = Callable[[Session, list[str]], Collection[str]]


def _id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{prefix}_[0-9a-f]{{20}}")


def _cohorts(session: Session, ids: list[str]) -> set[str]:
    """A cohort's row owns its folder until it is deleted and its ingestion run has ended."""
    ingest = aliased(Job)
    rows = session.execute(
        select(Cohort.id, Cohort.deleted_at, ingest.status)
        .outerjoin(ingest, ingest.id == Cohort.ingest_job_id)
        .where(Cohort.id.in_(ids))
    )
    return {
        cid
        for cid, deleted_at, status in rows
        if deleted_at is None or (status is not None and status not in TERMINAL_STATUSES)
    }


def _active_jobs(session: Session, ids: list[str]) -> set[str]:
    """Scratch and staging folders belong to a job until it ends (a re-queued job resumes from them)."""
    return set(session.scalars(select(Job.id).where(Job.id.in_(ids), Job.status.in_(ACTIVE))))


def _models(session: Session, ids: list[str]) -> set[str]:
    """A model version's row owns its folder; a training job publishes it just before that row is
    committed, so a job still queued or running owns it too (its next attempt replaces it). Jobs are
    read first: a job seen ended committed its model's row before, so the second read sees it."""
    job_of = {"job_" + i.removeprefix("mdl_"): i for i in ids}
    publishing = {job_of[j] for j in _active_jobs(session, list(job_of))}
    registered = set(session.scalars(select(ModelVersion.path).where(ModelVersion.path.in_(ids))))
    return publishing | registered


def _evaluations(session: Session, ids: list[str]) -> set[str]:
    return set(session.scalars(select(Evaluation.id).where(Evaluation.id.in_(ids))))


@dataclass(frozen=True)
class Area:
    """Folders ``<root>/<prefix><id>`` whose ``id`` matches ``pattern``, owned as ``owners`` says."""

    root: Callable[[Settings], Path]
    pattern: re.Pattern[str]
    owners: Owners
    prefix: str = ""

    def candidates(self, settings: Settings) -> dict[str, Path]:
        """id → folder, for every real folder here with a name of this area's shape."""
        root = self.root(settings)
        found = {}
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:
            return {}
        for entry in entries:
            name = entry.name.removeprefix(self.prefix) if entry.name.startswith(self.prefix) else None
            if name and self.pattern.fullmatch(name) and entry.is_dir(follow_symlinks=False):
                found[name] = Path(entry.path)
        return found


AREAS = (
    Area(lambda s: s.data_dir / "cohorts", _id_pattern("coh"), _cohorts),
    Area(lambda s: s.data_dir / "jobs", _id_pattern("job"), _active_jobs),
    Area(lambda s: s.data_dir / "evaluations", _id_pattern("evl"), _evaluations),
    Area(lambda s: s.model_dir, _id_pattern("mdl"), _models),
    Area(lambda s: s.model_dir, _id_pattern("job"), _active_jobs, prefix=".staging-"),
)


@dataclass(frozen=True)
class Removed:
    path: Path
    bytes: int


def _untouched_since(folder: Path, cutoff: float) -> int | None:
    """Total size of ``folder`` if nothing in it (itself included) was modified after ``cutoff``
    (epoch seconds); None as soon as something was. Links are not followed."""
    total = 0
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            if current.lstat().st_mtime > cutoff:
                return None
            entries = list(os.scandir(current))
        except FileNotFoundError:
            continue
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime > cutoff:
                return None
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                total += info.st_size
    return total


def sweep(settings: Settings, read_factory: sessionmaker[Session], *, now: float | None = None) -> list[Removed]:
    """Remove every orphaned work folder (see the module docstring); return what was removed."""
    cutoff = (time.time() if now is None else now) - settings.orphan_min_age_seconds
    removed = []
    for area in AREAS:
        folders = area.candidates(settings)
        live = live_paths()
        ids = [i for i, folder in folders.items() if folder not in live]
        owned: set[str] = set()
        for start in range(0, len(ids), BATCH):  # bounded IN lists (SQLite caps bound parameters)
            with read_factory() as session:
                owned.update(area.owners(session, ids[start : start + BATCH]))
        for folder in (folders[i] for i in ids if i not in owned):
            size = _untouched_since(folder, cutoff)
            if size is None:
                continue
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                continue  # removed by its owner meanwhile
            except OSError:
                log.exception("could not remove the orphaned folder %s", folder)
                continue
            log.warning("removed orphaned work folder %s (%.1f MB): no row owns it", folder, size / 1e6)
            removed.append(Removed(folder, size))
    return removed


class OrphanSweeper:
    """Sweeps once at start, then every ``orphan_sweep_interval_seconds``, in its own thread."""

    def __init__(self, settings: Settings, read_factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.read_factory = read_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="orphan-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self.settings, self.read_factory)
            except Exception:  # a database hiccup must not end the sweeping
                log.exception("orphan sweep failed")
            self._stop.wait(self.settings.orphan_sweep_interval_seconds)
