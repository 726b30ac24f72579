"""Synthetic cohorts: upload-ready archives that go through extraction, parsing and the cache."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import FITZ_CSV
from synth_helpers import content_digest, ingest

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.config import CohortConfig
from app.cohorts.synth.cxr import write_cxr_archive
from app.cohorts.synth.derm import JOINT_COUNTS, load_joint_counts, write_derm_archive

# Digests of the binary generators' output as it was before the multi-class and multi-finding
# generators were added (issue 14): binary cohorts must stay exactly as they were for a given seed.
BINARY_DERM_DIGEST = "c8fc04ea455e6d984150097c20bdd8e77ddc6c2dbc693a40ecd159025579e7e5"
BINARY_CXR_DIGEST = "fa263a4522541faf9d1180a19b2f2f5649276f280b725deee6859970bd0ca33b"


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_derm_archive_round_trip(tmp_path: Path, fmt: str) -> None:
    archive = write_derm_archive(tmp_path / "derm.zip", n=60, seed=1, image_size=64, fmt=fmt)
    manifest, cache = ingest(archive, tmp_path, CohortConfig(name="d", preset="fitzpatrick17k", image_size=32))
    assert len(manifest.items) == 60 and manifest.warnings == []
    assert any(item.attributes["skin_type"] is None for item in manifest.items), "some fitzpatrick_scale -1 rows"
    assert load_cohort_arrays(cache).images.shape == (60, 32, 32, 3)
    with zipfile.ZipFile(archive) as zf:
        header = zf.read("manifest.csv").decode().splitlines()[0]
        assert all(name.endswith(f".{fmt}") for name in zf.namelist() if name != "manifest.csv")
    with open(FITZ_CSV, encoding="utf-8") as f:
        assert header == f.readline().strip()


def test_derm_archive_is_deterministic(tmp_path: Path) -> None:
    first = write_derm_archive(tmp_path / "a.zip", n=20, seed=3).read_bytes()
    assert write_derm_archive(tmp_path / "b.zip", n=20, seed=3).read_bytes() == first
    assert write_derm_archive(tmp_path / "c.zip", n=20, seed=4).read_bytes() != first


def test_binary_generators_draw_what_they_drew_before_multiclass(tmp_path: Path) -> None:
    derm = write_derm_archive(tmp_path / "d.zip", n=30, seed=1, image_size=48, fmt="png")
    assert content_digest(derm) == BINARY_DERM_DIGEST
    assert content_digest(write_cxr_archive(tmp_path / "c.zip", n=20, seed=2, image_size=32)) == BINARY_CXR_DIGEST


def test_shipped_joint_counts_derive_from_the_real_table() -> None:
    if not FITZ_CSV.exists():
        pytest.skip("the Fitzpatrick 17k metadata table is not on this machine")
    assert load_joint_counts(JOINT_COUNTS) == load_joint_counts(FITZ_CSV)


def test_derm_planted_bias_lowers_lesion_contrast_on_dark_skin(tmp_path: Path) -> None:
    archive = write_derm_archive(tmp_path / "derm.zip", n=600, seed=0, image_size=64, fmt="png")
    manifest, cache = ingest(archive, tmp_path, CohortConfig(name="d", preset="fitzpatrick17k", image_size=64))
    images = load_cohort_arrays(cache).images.astype(float).mean(axis=3)
    spread = images.std(axis=(1, 2))  # the lesion dominates the spread; noise and lighting are alike
    malignant = np.array([item.label == 1 for item in manifest.items])
    skin = np.array([item.attributes["skin_type"] for item in manifest.items])
    dark, light = malignant & np.isin(skin, ["5", "6"]), malignant & np.isin(skin, ["1", "2", "3", "4"])
    assert dark.sum() >= 3 and light.sum() >= 30
    assert spread[dark].mean() < 0.6 * spread[light].mean()


def test_cxr_archive_round_trip(tmp_path: Path) -> None:
    archive = write_cxr_archive(tmp_path / "cxr.zip", n=40, seed=2, image_size=48)
    manifest, cache = ingest(archive, tmp_path, CohortConfig(name="x", preset="dicom", image_size=32))
    assert manifest.attribute_names == ["sex", "age_group"]
    patients = [item.patient_id for item in manifest.items]
    assert len(set(patients)) < len(patients), "several images per patient"
    assert all(p is not None and "SYN" not in p for p in patients), "PatientID is only kept hashed"
    assert {item.attributes["sex"] for item in manifest.items} == {"female", "male"}
    assert 0 < sum(item.label for item in manifest.items) < 40
    arrays = load_cohort_arrays(cache)
    assert arrays.images.shape == (40, 32, 32, 1)
    lungs = arrays.images[:, 12:20, 6:12, 0].mean()
    assert 20 < lungs < arrays.images[:, 12:20, 14:18, 0].mean(), "dark lungs beside a bright mediastinum"
