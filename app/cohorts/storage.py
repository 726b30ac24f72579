"""Where a cohort's files live: ``<data_dir>/cohorts/<id>/`` with ``archive.zip`` or ``archive.tar.gz``
(the uploaded archive as it came, never extracted, until ingestion is done: ``app.cohorts.sources``),
``cache/`` (the decoded images, see ``app.cohorts.cache``) and, only with ``keep_sources``, ``files/``
(the listed images, de-identified, kept after ingestion). During the upload request alone there is
also ``upload.bin`` (the archive being received) and ``manifest/`` (its manifest, while it is
parsed). Folders are owner-only (``app.core.private_files``)."""

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


ARCHIVE_KINDS = ("zip", "tar.gz")


def archive_file(settings: Settings, cohort_id: str, kind: str) -> Path:
    """Where the upload keeps its archive of ``kind`` (one of ``ARCHIVE_KINDS``)."""
    return cohort_dir(settings, cohort_id) / f"archive.{kind}"


def stored_archive(settings: Settings, cohort_id: str) -> Path | None:
    """The cohort's kept archive, or ``None`` once ingestion has released it."""
    for kind in ARCHIVE_KINDS:
        path = archive_file(settings, cohort_id, kind)
        if path.exists():  # a name, not opened: a test holds the decoders with a FIFO here
            return path
    return None


def manifest_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "manifest"


def files_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "files"


def cache_dir(settings: Settings, cohort_id: str) -> Path:
    return cohort_dir(settings, cohort_id) / "cache"


def remove_cohort_files(settings: Settings, cohort_id: str) -> None:
    shutil.rmtree(cohort_dir(settings, cohort_id), ignore_errors=True)
