"""Where a cohort's files live: ``<data_dir>/cohorts/<id>/`` with ``files/`` (the extracted archive)
and ``cache/`` (the decoded images, see ``app.cohorts.cache``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.settings import Settings


def cohort_dir(settings: Settings, cohort_id: str) -> Path:
    return settings.data_dir / "cohorts" / cohort_id


def files_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "files"


def cache_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "cache"


def remove_cohort_files(settings: Settings, cohort_id: str) -> None:
    shutil.rmtree(cohort_dir(settings, cohort_id), ignore_errors=True)
