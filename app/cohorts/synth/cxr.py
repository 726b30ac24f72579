"""Synthetic chest-X-ray cohort as DICOM files (``dicom`` preset), with a planted intersectional bias.

Patients (ids ``SYN<seed>-<n>``) have 1–4 images each, a sex (PatientSex M/F) and an age (20–89,
PatientAge like ``063Y``); PatientName and PatientBirthDate are filled with synthetic values so a
cohort shows that such tags are never kept. The manifest ``manifest.csv`` lists ``file`` and ``label``
(1 = finding present, prevalence ≈ 30 %).

Image: a chest-like radiograph in arbitrary attenuation units 0–1000 — body, two darker lung fields,
a bright mediastinum, faint ribs, noise. A finding is a soft bright opacity in a lower lung field.

Encoding, so that LUTs and photometric interpretation matter: stored values are 12-bit
(BitsStored 12) with a per-image RescaleSlope/RescaleIntercept (slope 0.5, 1 or 2), so the raw
numbers differ between images that look alike; WindowCenter 500 / WindowWidth 1000 is in rescaled
units. About a third are MONOCHROME1: they store the reflected image (1000 − value), which renders
identically once the reader applies the modality LUT, the window and the MONOCHROME1 inversion. A
reader that skips any of these steps gets visibly different images.

Planted bias (documented, learnable): the finding is fainter for older women. Its peak contrast is
160 units, but 60 for female patients aged 60 or more, so a classifier's sensitivity should be
lowest in the ``sex=female & age_group=60-74 / >=75`` cells while neither sex nor age alone shows the
full gap — an intersectional effect.

This cohort is easy (one fixed anatomy, one bright sign: AUC ≈ 1). The harder multi-finding cohort is
``cxr_findings.py``, which shares this module's patients and DICOM encoder.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

from app.cohorts.synth.archive import ArchiveWriter

DX_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray Image Storage - For Presentation
FINDING_CONTRAST = 160.0
FAINT_FINDING_CONTRAST = 60.0  # the planted bias: female patients aged 60 or more
PREVALENCE = 0.3
RESCALES = ((0.5, -100.0), (1.0, -1024.0), (2.0, 0.0))  # (slope, intercept): all fit in 12 bits


def write_cxr_archive(out: Path, n: int, seed: int, image_size: int = 128) -> Path:
    """Write an upload-ready zip: ``manifest.csv`` (dicom preset) and ``n`` DICOM files."""
    rng = np.random.default_rng(seed)
    patients = draw_patients(n, rng)
    anatomy = _Anatomy(image_size, rng)
    encoder = DicomEncoder(image_size, id_width=len(patient_id(seed, 0)))
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(["file", "label"])
    with ArchiveWriter(out) as archive:
        for i, (patient, sex, age) in enumerate(patients):
            label = int(rng.random() < PREVALENCE)
            faint = sex == "F" and age >= 60
            image = anatomy.radiograph(FAINT_FINDING_CONTRAST if faint else FINDING_CONTRAST, label)
            variant = (bool(rng.random() < 1 / 3), int(rng.integers(len(RESCALES))), sex)
            name = f"cxr_{i:05d}.dcm"
            archive.add(name, encoder.encode(image, variant, patient_id(seed, patient), age, f"{seed}-{i}"))
            writer.writerow([name, label])
        archive.add("manifest.csv", manifest.getvalue().encode("utf-8"), compress=True)
    return out


def patient_id(seed: int, patient: int) -> str:
    return f"SYN{seed}-{patient:05d}"


def draw_patients(n: int, rng: np.random.Generator) -> list[tuple[int, str, int]]:
    """``(patient number, sex, age)`` per image: patients with 1–4 images each, in order."""
    out: list[tuple[int, str, int]] = []
    patient = 0
    while len(out) < n:
        sex, age = ("F", "M")[int(rng.integers(2))], int(rng.integers(20, 90))
        out += [(patient, sex, age)] * int(rng.integers(1, 5))
        patient += 1
    return out[:n]


class _Anatomy:
    """The shared chest geometry (made once); each radiograph varies brightness, noise and finding."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        self.y, self.x = y, x
        body = ((x - 0.5) / 0.46) ** 2 + ((y - 0.55) / 0.55) ** 2 < 1
        lungs = np.zeros_like(x)
        for cx in (0.31, 0.69):
            lungs += np.exp(-((((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.27) ** 2) ** 2))
        ribs = 0.5 + 0.5 * np.sin(2 * np.pi * y * 9)
        mediastinum = np.exp(-(((x - 0.5) / 0.08) ** 2))
        self.base = (
            200 + 500 * body - 420 * np.clip(lungs, 0, 1) * (1 - 0.15 * ribs) + 250 * mediastinum * body
        ).astype(np.float32)

    def radiograph(self, contrast: float, label: int) -> np.ndarray:
        """Attenuation image in 0–1000 (see the module docstring)."""
        rng, s = self.rng, self.size
        image = self.base * rng.uniform(0.92, 1.08) + rng.normal(0, 25, (s, s)).astype(np.float32)
        if label:
            cx = rng.choice([0.3, 0.7]) + rng.uniform(-0.05, 0.05)
            cy = rng.uniform(0.55, 0.7)
            r = rng.uniform(0.06, 0.1)
            image += contrast * np.exp(-(((self.x - cx) ** 2 + (self.y - cy) ** 2) / (2 * r * r)))
        return np.clip(image, 0, 1000)


class DicomEncoder:
    """DICOM bytes per image. pydicom's writer costs ~1.5 ms a file, so it writes one template per
    variant (MONOCHROME1?, rescale, sex) holding fixed-width placeholder values, and each image is
    its template with its own values put in place — the same bytes pydicom would write."""

    _UIDS = tuple(f"2.25.{d * 39}" for d in "123")  # placeholders: SOP instance, study, series

    def __init__(self, size: int, id_width: int) -> None:
        self.size = size
        self.id_width = id_width
        self.templates: dict[tuple[bool, int, str], bytes] = {}

    def encode(self, image: np.ndarray, variant: tuple[bool, int, str], patient: str, age: int, uid_seed: str) -> bytes:
        monochrome1, rescale, _ = variant
        slope, intercept = RESCALES[rescale]
        physical = 1000 - image if monochrome1 else image
        stored = np.clip(np.rint((physical - intercept) / slope), 0, 4095).astype("<u2").tobytes()
        template = self.templates.get(variant) or self._template(variant)
        header = template[: -len(stored)]
        values = {
            self._placeholder_id(): patient,
            self._placeholder_name(): f"SYNTHETIC^{patient}",
            "999Y": f"{age:03d}Y",
            **{ph: _uid(uid_seed, k) for k, ph in enumerate(self._UIDS)},
        }
        for placeholder, value in values.items():
            header = header.replace(placeholder.encode(), value.encode())
        return header + stored

    def _placeholder_id(self) -> str:
        return "I" * self.id_width

    def _placeholder_name(self) -> str:
        return "SYNTHETIC^" + "N" * self.id_width

    def _template(self, variant: tuple[bool, int, str]) -> bytes:
        monochrome1, rescale, sex = variant
        slope, intercept = RESCALES[rescale]
        sop, study, series = (UID(u) for u in self._UIDS)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = DX_STORAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = DX_STORAGE
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.Modality = "DX"
        ds.PatientName = self._placeholder_name()
        ds.PatientID = self._placeholder_id()
        ds.PatientBirthDate = "19000101"
        ds.PatientSex = sex
        ds.PatientAge = "999Y"
        ds.Rows = ds.Columns = self.size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
        ds.WindowCenter, ds.WindowWidth = 500, 1000
        ds.PixelData = bytes(2 * self.size * self.size)
        buf = io.BytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        self.templates[variant] = buf.getvalue()
        return self.templates[variant]


def _uid(seed: str, kind: int) -> str:
    """A deterministic UID of the placeholders' width: ``2.25.`` and a 39-digit integer."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}/{kind}".encode()).digest()[:16], "big")
    return f"2.25.{10**38 + digest % (9 * 10**38)}"
