"""DICOM: demographics from tags, and pixels rendered the way a reading viewer shows them.

Privacy: the tags read for metadata are PatientSex, PatientAge and PatientID, plus the tags a cohort
config names in ``dicom_tags`` from the allow-list ``EXTRA_TAGS``; only derived values leave this
module: sex, age in years, ``HMAC-SHA256(salt, PatientID)`` truncated to 16 hex digits, and each named
tag's value — as is for a tag PS3.15 Annex E's basic profile keeps (Manufacturer,
ManufacturerModelName, Modality, ViewPosition), or likewise salted and hashed (``tag_hash``) for one
it removes as identifying a place or a device (``IDENTIFYING_TAGS``: InstitutionName,
InstitutionalDepartmentName, StationName, DeviceSerialNumber): sites and scanners can then be compared
as groups without their names ever being stored. EthnicGroup, which the profile removes as a patient
characteristic, is kept as is: like sex and age it is what an audit is about, and a hash would hide
the groups the report must name. The salt is per cohort (chosen by the caller, random by default), so
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

Untrusted files are read within ``ImageLimits`` (transfer syntax, header size, pixel count, expansion)
before any pixel is decoded; see ``dicom_reader``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from app.cohorts.config import MAX_AGE
from app.cohorts.dicom_reader import DicomError, DicomSource, decode_first_frame, read_tags
from app.cohorts.image_limits import ImageLimits

_SEX = {"M": "male", "F": "female", "O": "other"}
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
DEMOGRAPHIC_TAGS = {"PatientSex": "CS", "PatientAge": "AS", "PatientID": "LO"}  # keyword: value representation
#: Further tags a cohort may read as attributes (``CohortConfig.dicom_tags``), with their value representation.
EXTRA_TAGS = {
    "EthnicGroup": "SH",
    "Manufacturer": "LO",
    "ManufacturerModelName": "LO",
    "Modality": "CS",
    "ViewPosition": "CS",
    "InstitutionName": "LO",
    "InstitutionalDepartmentName": "LO",
    "StationName": "SH",
    "DeviceSerialNumber": "LO",
}
#: Those the PS3.15 basic profile removes or replaces as identifying a site or device: stored hashed only.
IDENTIFYING_TAGS = frozenset({"InstitutionName", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber"})
_TAG_VRS = {**DEMOGRAPHIC_TAGS, **EXTRA_TAGS}
_RENDER_CHUNK = 1 << 20  # pixels rendered at a time: bounds the float64 temporaries to 8 MiB each


@dataclass(frozen=True)
class Demographics:
    sex: str | None  # male / female / other; None when absent
    age: float | None  # years
    patient_hash: str | None  # salted hash of PatientID (module docstring)
    tags: dict[str, str | None]  # each requested extra tag's value, hashed when identifying; None when absent


def patient_hash(patient_id: str, salt: bytes) -> str:
    return hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def tag_hash(keyword: str, value: str, salt: bytes) -> str:
    """An identifying tag's value as a group label: salted like the patient hash, keyed by the tag too,
    so one text in two tags gives two unrelated labels."""
    return hmac.new(salt, f"{keyword}\0{value}".encode(), hashlib.sha256).hexdigest()[:16]


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


def read_demographics(
    source: DicomSource, salt: bytes, limits: ImageLimits | None = None, extra_tags: Sequence[str] = ()
) -> Demographics:
    """Read the three demographic tags and ``extra_tags`` (keywords of ``EXTRA_TAGS``) only, in one pass
    within the header budget: no pixel data, nothing past the last of them."""
    ds = read_tags(source, [*DEMOGRAPHIC_TAGS, *extra_tags], limits or ImageLimits())
    sex_tag = _text(ds, "PatientSex").upper()
    if sex_tag and sex_tag not in _SEX:
        raise DicomError(f"PatientSex {sex_tag!r} is not M, F or O")
    patient_id = _text(ds, "PatientID")
    return Demographics(
        sex=_SEX.get(sex_tag),
        age=parse_age(_text(ds, "PatientAge")),
        patient_hash=patient_hash(patient_id, salt) if patient_id else None,
        tags={keyword: _attribute(keyword, _text(ds, keyword), salt) for keyword in extra_tags},
    )


def _attribute(keyword: str, value: str, salt: bytes) -> str | None:
    if not value:
        return None
    return tag_hash(keyword, value, salt) if keyword in IDENTIFYING_TAGS else value


def _text(ds: Dataset, keyword: str) -> str:
    """One tag as stripped text. A tag stored with another value representation, or whose
    value cannot be decoded, is refused by name rather than guessed at."""
    if keyword not in ds:
        return ""
    try:
        element = ds[keyword]
    except Exception as exc:  # pydicom raises many types for values that do not fit their VR
        raise DicomError(f"{keyword} cannot be read: {exc}") from exc
    expected = _TAG_VRS[keyword]
    if str(element.VR) != expected:
        raise DicomError(f"{keyword} has value representation {element.VR}, expected {expected}")
    if element.value is None:
        return ""
    if not isinstance(element.value, str):
        raise DicomError(f"{keyword} holds several values; expected one")
    return element.value.strip()


def decode_dicom(source: DicomSource, limits: ImageLimits) -> np.ndarray:
    """Pixels as ``uint8``: ``(rows, cols)`` greyscale or ``(rows, cols, 3)`` RGB (module docstring).

    Raises ``DicomError`` (unreadable or unsupported) or ``DicomTooLarge`` (over ``limits``) before
    decoding anything it would refuse."""
    arr, ds = decode_first_frame(source, limits)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            return render_grey(arr, ds)
        if arr.ndim == 3 and arr.shape[-1] == 3:
            return arr if arr.dtype == np.uint8 else (arr >> max(int(ds.BitsStored) - 8, 0)).astype(np.uint8)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # malformed LUT or window elements
        raise DicomError(f"cannot render the DICOM image: {type(exc).__name__}: {exc}") from exc
    raise DicomError(f"unsupported PhotometricInterpretation {photometric!r}")


def render_grey(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Steps 1–4 of the module docstring for one greyscale frame, ``_RENDER_CHUNK`` pixels at a time
    (each pixel's value depends only on itself and the dataset, so chunks give the same result)."""
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = "WindowCenter" in ds and "WindowWidth" in ds

    def voi(chunk: np.ndarray) -> np.ndarray:
        values = apply_modality_lut(chunk, ds)
        if has_lut:
            return apply_voi_lut(np.rint(values).astype(np.int64), ds)
        return apply_voi_lut(values, ds) if has_window else values

    flat = stored.reshape(-1)
    chunks = range(0, flat.size, _RENDER_CHUNK)
    if has_lut:
        lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    elif has_window:
        with np.errstate(over="ignore"):
            lo, hi = (float(v) for v in apply_voi_lut(np.array([-np.inf, np.inf]), ds))
    elif _is_plain_8bit(ds):
        lo, hi = 0.0, 255.0
    else:
        ranges = [(float(v.min()), float(v.max())) for v in (voi(flat[s : s + _RENDER_CHUNK]) for s in chunks)]
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.empty(flat.size, dtype=np.uint8)
    for s in chunks:
        out[s : s + _RENDER_CHUNK] = np.clip(np.rint((voi(flat[s : s + _RENDER_CHUNK]) - lo) * scale), 0, 255)
    image = out.reshape(stored.shape)
    return 255 - image if ds.PhotometricInterpretation == "MONOCHROME1" else image


def _is_plain_8bit(ds: Dataset) -> bool:
    identity = float(ds.get("RescaleSlope", 1) or 1) == 1 and float(ds.get("RescaleIntercept", 0) or 0) == 0
    return (
        int(ds.BitsStored) <= 8 and int(ds.PixelRepresentation) == 0 and identity and not ds.get("ModalityLUTSequence")
    )
