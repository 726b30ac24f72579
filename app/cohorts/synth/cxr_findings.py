"""Harder synthetic chest X-rays with several findings per image (``fairaudit synth cxr --findings N``).

The binary generator (``cxr.py``) is solved at AUC 1.000: one fixed anatomy, one bright blob. This
one is meant to rank methods, so every image varies and every sign is hard to see:

- anatomy per image: the body, both lung fields, the heart and the rib phase are drawn afresh
  (position, size), the whole chest shifts by up to 3 % of the side, brightness varies ±15 % with an
  offset of ±40 units, and white noise has σ 15–35 units;
- clutter: two to four soft blobs of ±50 units in the lungs, which look like faint opacities;
- findings (the first ``N`` of ``FINDINGS``), each its own sign with a peak contrast drawn from
  0.5–1.5 × ``CONTRAST[finding]`` and a random size and place: ``effusion`` fluid filling a lung base,
  ``nodule`` a small round spot, ``cardiomegaly`` a wider heart silhouette, ``opacity`` a soft patch
  inside a lung, ``pneumothorax`` a darker, rib-less band along a lung's outer edge, ``atelectasis`` a
  thin oblique bright band low in a lung, ``edema`` a bilateral haze around the hila, ``mass`` a larger
  round, sharper-edged bright region. Nodule, opacity and mass overlap, and so do edema and opacity;
- co-occurrence: findings share a patient-level latent severity (logit-scale σ ``COMORBIDITY``), so a
  patient with one finding is likelier to have others, and all images of a patient share it;
- label noise: each finding's recorded label is flipped with probability ``LABEL_NOISE`` (3 %); the
  image follows the true label.

Planted bias (documented, learnable), kept per finding: every sign is ``FAINT_FACTOR`` (0.45) times
as strong for female patients aged 60 or more, so each finding's sensitivity should be lowest in the
``sex=female & age_group=60-74 / >=75`` cells — an intersectional effect, as in the binary cohort.

Patients, demographics and the DICOM encoding (rescale, MONOCHROME1, synthetic identifying tags) are
those of ``cxr.py``. The manifest lists ``file``, ``label`` (= the first finding, so the binary
``dicom`` preset still loads the archive) and one 0/1 column per finding named by the finding; a
multi-label cohort config is ``cohort_config(N)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.cohorts.synth.archive import ArchiveWriter
from app.cohorts.synth.cxr import RESCALES, DicomEncoder, draw_patients, patient_id

FINDINGS = ("effusion", "nodule", "cardiomegaly", "opacity", "pneumothorax", "atelectasis", "edema", "mass")
PREVALENCE = {
    "effusion": 0.25,
    "nodule": 0.15,
    "cardiomegaly": 0.2,
    "opacity": 0.25,
    "pneumothorax": 0.1,
    "atelectasis": 0.2,
    "edema": 0.15,
    "mass": 0.1,
}
CONTRAST = {  # peak sign contrast in attenuation units (0–1000), before the 0.5–1.5 draw
    "effusion": 120.0,
    "nodule": 300.0,
    "cardiomegaly": 200.0,
    "opacity": 100.0,
    "pneumothorax": 100.0,
    "atelectasis": 180.0,
    "edema": 70.0,
    "mass": 200.0,
}
FAINT_FACTOR = 0.45  # the planted bias: female patients aged 60 or more
LABEL_NOISE = 0.03
COMORBIDITY = 0.8


def cohort_config(findings: int) -> dict[str, Any]:
    """The multi-label cohort config that loads an archive of ``findings`` findings."""
    return {"preset": "dicom", "task": "multilabel", "finding_columns": list(FINDINGS[:findings])}


def write_findings_archive(out: Path, n: int, seed: int, findings: int, image_size: int = 128) -> Path:
    """Write an upload-ready zip: ``manifest.csv`` (dicom preset, one column per finding) and ``n``
    DICOM files showing the first ``findings`` of ``FINDINGS``."""
    if not 1 <= findings <= len(FINDINGS):
        raise ValueError(f"findings must be 1..{len(FINDINGS)}, got {findings}")
    names = FINDINGS[:findings]
    rng = np.random.default_rng(seed)
    patients = draw_patients(n, rng)
    severity = rng.normal(0.0, COMORBIDITY, patients[-1][0] + 1 if patients else 0)
    chest = ChestRenderer(image_size, names, rng)
    encoder = DicomEncoder(image_size, id_width=len(patient_id(seed, 0)))
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(["file", "label", *names])
    with ArchiveWriter(out) as archive:
        for i, (patient, sex, age) in enumerate(patients):
            odds = np.log([PREVALENCE[f] / (1 - PREVALENCE[f]) for f in names]) + severity[patient]
            present = rng.random(findings) < 1 / (1 + np.exp(-odds))
            strength = FAINT_FACTOR if sex == "F" and age >= 60 else 1.0
            image = chest.radiograph(present, strength)
            recorded = present ^ (rng.random(findings) < LABEL_NOISE)
            variant = (bool(rng.random() < 1 / 3), int(rng.integers(len(RESCALES))), sex)
            name = f"cxr_{i:05d}.dcm"
            archive.add(name, encoder.encode(image, variant, patient_id(seed, patient), age, f"{seed}-{i}"))
            writer.writerow([name, int(recorded[0]), *(int(v) for v in recorded)])
        archive.add("manifest.csv", manifest.getvalue().encode("utf-8"), compress=True)
    return out


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(v, -60, 60)))


class ChestRenderer:
    """Draws one radiograph at a time. Every sign of the archive's findings is drawn for every image,
    present or not, so the random stream (and so the anatomy and noise) does not depend on the labels:
    the same seed with other labels gives the same chest with other signs."""

    def __init__(self, size: int, findings: tuple[str, ...], rng: np.random.Generator) -> None:
        self.size = size
        self.findings = findings
        self.rng = rng
        self.y, self.x = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def radiograph(self, present: np.ndarray, strength: float) -> np.ndarray:
        """Attenuation image in 0–1000: anatomy, then the present signs × ``strength``, then noise."""
        rng, s = self.rng, self.size
        chest = _Chest(self.x - rng.uniform(-0.03, 0.03), self.y - rng.uniform(-0.03, 0.03), rng)
        image = chest.anatomy()
        for finding, shown in zip(self.findings, present, strict=True):
            sign = CONTRAST[finding] * rng.uniform(0.5, 1.5) * SIGNS[finding](chest)
            if shown:
                image += strength * sign
        image += chest.clutter()
        image = image * rng.uniform(0.85, 1.15) + rng.uniform(-40, 40)
        image += rng.normal(0, rng.uniform(15, 35), (s, s)).astype(np.float32)
        return np.clip(image, 0, 1000)


class _Chest:
    """One image's anatomy (drawn on construction) and its unit-contrast finding signs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        self.x, self.y, self.rng = x, y, rng
        self.body = (rng.uniform(0.42, 0.5), rng.uniform(0.5, 0.6))
        self.lungs = [
            (
                0.5 + side * rng.uniform(0.17, 0.21),
                rng.uniform(0.47, 0.53),
                rng.uniform(0.13, 0.17),
                rng.uniform(0.24, 0.3),
            )
            for side in (-1, 1)
        ]
        self.heart = (rng.uniform(0.51, 0.55), rng.uniform(0.6, 0.65), rng.uniform(0.11, 0.15), rng.uniform(0.09, 0.12))
        self.rib_frequency, self.rib_phase = rng.uniform(8, 10), rng.uniform(0, 1)
        self.lung_maps = [self._lung(lung) for lung in self.lungs]

    def anatomy(self) -> np.ndarray:
        x, y = self.x, self.y
        bw, bh = self.body
        body = _sigmoid((1 - ((x - 0.5) / bw) ** 2 - ((y - 0.55) / bh) ** 2) / 0.05)
        lungs = np.clip(self.lung_maps[0] + self.lung_maps[1], 0, 1)
        mediastinum = np.exp(-(((x - 0.5) / 0.07) ** 2))
        return (
            200
            + 500 * body
            - 420 * lungs * (1 - 0.15 * self._ribs())
            + 250 * mediastinum * body
            + 200 * self._heart(0.0)
        ).astype(np.float32)

    def clutter(self) -> np.ndarray:
        rng = self.rng
        out = np.zeros_like(self.x)
        for _ in range(int(rng.integers(2, 5))):
            lung = self.lungs[int(rng.integers(2))]
            out += rng.uniform(-50, 50) * self._spot(self._inside(lung, 0.6), rng.uniform(0.04, 0.1))
        return out

    def effusion(self) -> np.ndarray:
        side = int(self.rng.integers(2))
        _, cy, _, hh = self.lungs[side]
        level = cy + hh * self.rng.uniform(0.35, 0.7)
        return _sigmoid((self.y - level) / 0.02) * np.clip(2 * self.lung_maps[side], 0, 1)

    def nodule(self) -> np.ndarray:
        lung = self.lungs[int(self.rng.integers(2))]
        return self._spot(self._inside(lung, 0.5), self.rng.uniform(0.025, 0.04))

    def cardiomegaly(self) -> np.ndarray:
        return self._heart(self.rng.uniform(0.03, 0.06)) - self._heart(0.0)

    def opacity(self) -> np.ndarray:
        side = int(self.rng.integers(2))
        centre = self._inside(self.lungs[side], 0.5, low=True)
        return self._spot(centre, self.rng.uniform(0.05, 0.09)) * np.clip(2 * self.lung_maps[side], 0, 1)

    def pneumothorax(self) -> np.ndarray:
        side = int(self.rng.integers(2))
        cx, cy, hw, _ = self.lungs[side]
        edge = abs(cx - 0.5) + hw * self.rng.uniform(0.2, 0.5)
        band = _sigmoid((np.abs(self.x - 0.5) - edge) / 0.01) * _sigmoid((cy + 0.05 - self.y) / 0.03)
        return -band * np.clip(2 * self.lung_maps[side], 0, 1) * (1 + 0.3 * self._ribs())

    def atelectasis(self) -> np.ndarray:
        rng = self.rng
        cx, cy, hw, hh = self.lungs[int(rng.integers(2))]
        centre = (cx + hw * rng.uniform(-0.3, 0.3), cy + hh * rng.uniform(0.1, 0.5))
        angle, half_length, width = rng.uniform(-0.5, 0.5), rng.uniform(0.05, 0.1), rng.uniform(0.008, 0.015)
        dx, dy = self.x - centre[0], self.y - centre[1]
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        return np.exp(-(across**2) / (2 * width**2)) * _sigmoid((half_length - np.abs(along)) / 0.01)

    def edema(self) -> np.ndarray:
        rng = self.rng
        r = rng.uniform(0.07, 0.11)
        hila = sum(self._spot((0.5 + side * 0.1, self.lungs[0][1] - 0.02), r) for side in (-1, 1))
        return hila * np.clip(self.lung_maps[0] + self.lung_maps[1], 0, 1)

    def mass(self) -> np.ndarray:
        lung = self.lungs[int(self.rng.integers(2))]
        cx, cy = self._inside(lung, 0.5)
        r = self.rng.uniform(0.045, 0.075)
        return np.exp(-((((self.x - cx) ** 2 + (self.y - cy) ** 2) / r**2) ** 2))

    def _lung(self, lung: tuple[float, float, float, float]) -> np.ndarray:
        cx, cy, hw, hh = lung
        return np.exp(-((((self.x - cx) / hw) ** 2 + ((self.y - cy) / hh) ** 2) ** 2))

    def _heart(self, enlargement: float) -> np.ndarray:
        cx, cy, hw, hh = self.heart
        return np.exp(-((((self.x - cx) / (hw + enlargement)) ** 2 + ((self.y - cy) / hh) ** 2) ** 3))

    def _ribs(self) -> np.ndarray:
        return 0.5 + 0.5 * np.sin(2 * np.pi * (self.y * self.rib_frequency + self.rib_phase))

    def _inside(self, lung: tuple[float, float, float, float], reach: float, low: bool = False) -> tuple[float, float]:
        """A point inside a lung field, within ``reach`` of its half-axes (the lower half if ``low``)."""
        cx, cy, hw, hh = lung
        dy = self.rng.uniform(0.0 if low else -reach, reach)
        return cx + hw * self.rng.uniform(-reach, reach), cy + hh * dy

    def _spot(self, centre: tuple[float, float], r: float) -> np.ndarray:
        return np.exp(-((self.x - centre[0]) ** 2 + (self.y - centre[1]) ** 2) / (2 * r * r))


SIGNS: dict[str, Callable[[_Chest], np.ndarray]] = {
    "effusion": _Chest.effusion,
    "nodule": _Chest.nodule,
    "cardiomegaly": _Chest.cardiomegaly,
    "opacity": _Chest.opacity,
    "pneumothorax": _Chest.pneumothorax,
    "atelectasis": _Chest.atelectasis,
    "edema": _Chest.edema,
    "mass": _Chest.mass,
}
