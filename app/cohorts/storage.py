"""Where a cohort's files live: ``<data_dir>/cohorts/<id>/`` with ``files/`` (the extracted archive,
until ingestion is done: ``app.cohorts.sources``) and ``cache/`` (the decoded images, see
``app.cohorts.cache``). Folders are owner-only (``app.core.private_files``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.core.private_files import private_dir
from app.settings import Settings


def cohort_dir(settings: Settings, cohort_id: str) -> Path:
    return settings.data_dir / "cohorts" / cohort_id


def create_cohort_dir(settings: Settings, cohort_id: str) -> Path:
    """A new, empty, owner-only cohort folder."""
    private_dir(settings.data_dir / "cohorts")
    folder = cohort_dir(settings, cohort_id)
    folder.mkdir(mode=0o700)
    return folder


def files_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "files"


def cache_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "cache"


def remove_cohort_files(settings: Settings, cohort_id: str) -> None:
    shutil.rmtree(cohort_dir(settings, cohort_id), ignore_errors=True)
