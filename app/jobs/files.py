"""Where a job's files live, and removing them when a job ends without success (no orphans)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.settings import Settings


def job_work_dir(settings: Settings, job_id: str) -> Path:
    return settings.data_dir / "jobs" / job_id


def staging_model_dir(settings: Settings, job_id: str) -> Path:
    """Exports are written here first and renamed into place only when the job succeeds."""
    return settings.model_dir / f".staging-{job_id}"


def remove_job_files(settings: Settings, job_id: str) -> None:
    for path in (job_work_dir(settings, job_id), staging_model_dir(settings, job_id)):
        shutil.rmtree(path, ignore_errors=True)
