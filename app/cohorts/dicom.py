"""DICOM: demographics from tags, and pixels rendered the way a reading viewer shows them.

Privacy: only three tags are ever read for metadata — PatientSex, PatientAge and PatientID — and
only derived values leave this module: sex, age in years, and ``HMAC-SHA256(salt, PatientID)``
truncated to 16 hex digits. The salt is per cohort (chosen by the caller, random by default), so
the same patient has unrelated keys in two cohorts and the PatientID cannot be recovered by hashing
candidate ids. Names, birth dates, accession numbers and all other tags are never stored.

Rendering rule for greyscale (MONOCHROME1/2) images:

1. the Modality LUT (LUT sequence, or RescaleSlope/RescaleIntercept) maps stored values to
   output units (``pydicom.pixels.apply_modality_lut``);
2. if the file has a VOI LUT or a window (WindowCenter/WindowWidth, first one if several), it is
   applied (``apply_voi_lut``) and the VOI's output range maps linearly to 0–255 — for a window the
   range pydicom windows into, for a VOI LUT ``0 .. 2**bits − 1`` of its descriptor;
3. without a VOI, 8-bit unsigned data with no rescale is kept as is (so a DICOM holds the same
   pixels as a PNG of them); anything else is stretched from its own minimum to maximum;
4. MONOCHROME1 (low values bright) is inverted last, so every output has "higher = brighter".

Colour (RGB, or YBR which pydicom converts to RGB) 8-bit data is kept; deeper colour data is shifted
down to 8 bits. Multi-frame files use their first frame.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from app.cohorts.config import MAX_AGE

_SEX = {"M": "male", "F": "female", "O": "other"}
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
DEMOGRAPHIC_TAGS = ["PatientSex", "PatientAge", "PatientID"]


class DicomError(Exception):
    """A file that is not a readable DICOM image, or whose demographic tags are malformed."""


@dataclass(frozen=True)
class Demographics:
    sex: str | None  # male / female / other; None when absent
    age: float | None  # years
    patient_hash: str | None  # salted hash of PatientID (module docstring)


def patient_hash(patient_id: str, salt: bytes) -> str:
    return hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def parse_age(value: str) -> float | None:
    """DICOM age string (``063Y``, ``006M``, ``010W``, ``003D``) in years; blank is ``None``."""
    value = value.strip()
    if not value:
        return None
    match = _AGE.match(value)
    if not match:
        raise DicomError(f"PatientAge {value!r} is not a DICOM age like '063Y'")
    years = round(int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] / 365.25, 2)
    if years > MAX_AGE:
        raise DicomError(f"PatientAge {value!r} is above {MAX_AGE} years")
    return years


def read_demographics(path: Path, salt: bytes) -> Demographics:
    """Read the three demographic tags only (no pixel data)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=DEMOGRAPHIC_TAGS)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise DicomError(f"not a readable DICOM file: {exc}") from exc
    sex_tag = str(ds.get("PatientSex", "") or "").strip().upper()
    if sex_tag and sex_tag not in _SEX:
        raise DicomError(f"PatientSex {sex_tag!r} is not M, F or O")
    patient_id = str(ds.get("PatientID", "") or "").strip()
    return Demographics(
        sex=_SEX.get(sex_tag),
        age=parse_age(str(ds.get("PatientAge", "") or "")),
        patient_hash=patient_hash(patient_id, salt) if patient_id else None,
    )


def decode_dicom(source: Path | BinaryIO, max_pixels: int) -> np.ndarray:
    """Pixels as ``uint8``: ``(rows, cols)`` greyscale or ``(rows, cols, 3)`` RGB (module docstring)."""
    try:
        ds = pydicom.dcmread(source)
        rows, cols = int(ds.Rows), int(ds.Columns)
        if rows * cols > max_pixels:
            raise DicomError(
                f"decompression bomb: image is {cols}x{rows} = {rows * cols} pixels, above the limit of {max_pixels}"
            )
        photometric = str(ds.get("PhotometricInterpretation", ""))
        arr = ds.pixel_array
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            arr = arr[0]
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            return render_grey(arr, ds)
        if arr.ndim == 3 and arr.shape[-1] == 3:
            return arr if arr.dtype == np.uint8 else (arr >> max(int(ds.BitsStored) - 8, 0)).astype(np.uint8)
        raise DicomError(f"unsupported PhotometricInterpretation {photometric!r}")
    except DicomError:
        raise
    except (InvalidDicomError, AttributeError, KeyError) as exc:
        raise DicomError(f"not a readable DICOM image: {exc}") from exc
    except Exception as exc:  # pydicom decoders raise many types for corrupt or unsupported data
        raise DicomError(f"cannot decode DICOM pixel data: {type(exc).__name__}: {exc}") from exc


def render_grey(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Steps 1–4 of the module docstring for one greyscale frame."""
    values = apply_modality_lut(stored, ds)
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if has_lut:
        values = apply_voi_lut(np.rint(values).astype(np.int64), ds)
        lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    elif has_window:
        values = apply_voi_lut(values, ds)
        with np.errstate(over="ignore"):
            lo, hi = (float(v) for v in apply_voi_lut(np.array([-np.inf, np.inf]), ds))
    elif _is_plain_8bit(ds):
        lo, hi = 0.0, 255.0
    else:
        lo, hi = float(values.min()), float(values.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip(np.rint((values - lo) * scale), 0, 255).astype(np.uint8)
    return 255 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


def _is_plain_8bit(ds: Dataset) -> bool:
    identity = float(ds.get("RescaleSlope", 1) or 1) == 1 and float(ds.get("RescaleIntercept", 0) or 0) == 0
    return (
        int(ds.BitsStored) <= 8 and int(ds.PixelRepresentation) == 0 and identity and not ds.get("ModalityLUTSequence")
    )
