"""Real files for cohort tests: images, DICOM datasets, archives and generous limits."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from app.cohorts.archive import ArchiveLimits, CheckedArchive, open_archive

LIMITS = ArchiveLimits(max_uncompressed_bytes=10**9, max_compression_ratio=200.0, max_entries=10_000)
# The reference data lives in ``shared/`` beside the checkout (as on developer machines and in CI).
FITZ_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "fitzpatrick17k_metadata.csv"


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **save)
    return buf.getvalue()


def png(value: int = 100, size: int = 16) -> bytes:
    return image_bytes(np.full((size, size, 3), value, dtype=np.uint8))


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def write_tar_gz(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def write_files(root: Path, entries: dict[str, bytes]) -> Path:
    for name, data in entries.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def dicom_bytes(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    sex: str = "F",
    age: str = "063Y",
    patient_id: str = "PAT-1",
) -> bytes:
    """A single-frame greyscale DICOM file holding ``stored`` (uint8 or uint16) as is."""
    uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uid
    ds.Modality = "DX"
    ds.PatientID, ds.PatientSex, ds.PatientAge = patient_id, sex, age
    ds.PatientName = "DOE^JANE"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = 8 * stored.dtype.itemsize
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits_stored or bits, (bits_stored or bits) - 1
    ds.PixelRepresentation = 0
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def listing(folder: Path) -> list[str]:
    """Everything under ``folder`` (to assert that nothing was left behind)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def read_all(archive: Path, dest: Path, limits: ArchiveLimits = LIMITS) -> tuple[CheckedArchive, dict[str, bytes]]:
    """Open ``archive`` (its manifest written to ``dest``) and read every other file in it, as the
    upload reads the listed ones; returns the checked archive and the files' contents."""
    with open_archive(archive, dest, limits) as checked:
        contents = {name: member.read() for name, member in checked.read(checked.files)}
    return checked, contents
