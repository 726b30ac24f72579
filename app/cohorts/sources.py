"""The uploaded originals after ingestion: deleted, or kept de-identified when the cohort asks to.

An uploaded DICOM holds PatientName, PatientID, BirthDate, AccessionNumber, InstitutionName and
more; the service only ever needs the decoded cache and the salted patient hash (``dicom.py``).
The upload keeps the checked archive as it came (nothing is extracted, ``archive.py``) for the
ingestion job to decode from; once the job has built the cache (and made it durable:
``cache.sync_cache``), the archive is deleted, manifest and unlisted files included. With
``keep_sources: true`` in the cohort config the listed images are first written to the cohort's
``files/`` folder and everything else goes (the manifest too: its rows are in the database); every
DICOM among them is written de-identified straight from the archive (``deidentify.py``: no copy
with its tags is ever written), and one that cannot be rewritten is left out rather than kept with
its tags. PNG and JPEG files are kept as uploaded. A failed or cancelled ingestion removes the
archive as well (``ingestion_job``). So patient identifiers in DICOM files do not outlive ingestion.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

from app.cohorts.deidentify import deidentify_dicom
from app.cohorts.dicom_reader import DicomError, DicomTooLarge
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import DICOM_MAGIC
from app.cohorts.members import CHUNK, read_members


def release_sources(
    archive: Path | None, files: Path, listed: Collection[str], *, keep: bool, uid_salt: str, limits: ImageLimits
) -> None:
    """Apply the rule of the module docstring: ``listed`` are the items' paths in ``archive`` (``None``
    once released), ``files`` the folder kept images go to. Safe to repeat (a retried job does): the
    archive is deleted last, and ``files`` is rewritten from it while it exists."""
    if archive is None:
        return
    shutil.rmtree(files, ignore_errors=True)  # a kept copy an interrupted run left half written
    if keep:
        for rel, member in read_members(archive, listed, archive.parent):
            target = files / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.read(132)[128:] == DICOM_MAGIC:
                try:
                    deidentify_dicom(member, target, uid_salt, limits)
                except (DicomError, DicomTooLarge):
                    continue
            else:
                member.seek(0)
                with target.open("xb") as out:
                    shutil.copyfileobj(member, out, CHUNK)
    archive.unlink()
