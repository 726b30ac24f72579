"""The uploaded originals after ingestion: deleted, or kept de-identified when the cohort asks to.

An uploaded DICOM holds PatientName, PatientID, BirthDate, AccessionNumber, InstitutionName and
more; the service only ever needs the decoded cache and the salted patient hash (``dicom.py``).
So once ingestion has built the cache (and made it durable: ``cache.sync_cache``), the cohort's
``files/`` folder is deleted, manifest included. With ``keep_sources: true`` in the cohort config the
listed images stay and everything else goes (the manifest too: its rows are in the database); every
DICOM among them is rewritten de-identified (``deidentify.py``), and one that cannot be rewritten is
deleted rather than kept with its tags. PNG and JPEG files are kept as uploaded. A failed or
cancelled ingestion removes the files as well (``ingestion_job``).
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

from app.cohorts.deidentify import deidentify_dicom, is_deidentified
from app.cohorts.dicom_reader import DicomError, DicomTooLarge
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import DICOM_MAGIC


def release_sources(files: Path, listed: Collection[Path], *, keep: bool, uid_salt: str, limits: ImageLimits) -> None:
    """Apply the rule of the module docstring to ``files``; safe to repeat (a retried job does)."""
    if not keep:
        shutil.rmtree(files, ignore_errors=True)
        return
    for path in sorted(files.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path not in listed:
            path.unlink()
        elif _is_dicom(path):
            try:
                if not is_deidentified(path, limits):
                    deidentify_dicom(path, uid_salt, limits)
            except (DicomError, DicomTooLarge):
                path.unlink()


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(132)[128:] == DICOM_MAGIC
