"""The harder multi-finding synthetic chest X-rays: layout, frequencies, the planted bias, difficulty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from synth_helpers import ingest, manifest_rows

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.config import CohortConfig
from app.cohorts.synth.cxr_findings import (
    COMORBIDITY,
    CONTRAST,
    FAINT_FACTOR,
    FINDINGS,
    LABEL_NOISE,
    PREVALENCE,
    SIGNS,
    ChestRenderer,
    cohort_config,
    write_findings_archive,
)


def expected_frequency(finding: str) -> float:
    """The recorded frequency the docstring promises: the prevalence shifted by the patient latent
    (integrated over its normal distribution), then flipped with probability ``LABEL_NOISE``."""
    z = np.linspace(-6, 6, 2001)
    weights = np.exp(-(z**2) / 2)
    logit = np.log(PREVALENCE[finding] / (1 - PREVALENCE[finding])) + COMORBIDITY * z
    present = float((weights / (1 + np.exp(-logit))).sum() / weights.sum())
    return present * (1 - LABEL_NOISE) + (1 - present) * LABEL_NOISE


def test_findings_archive_loads_with_the_binary_dicom_preset(tmp_path: Path) -> None:
    archive = write_findings_archive(tmp_path / "cxr.zip", n=40, seed=3, findings=3, image_size=32)
    rows = manifest_rows(archive)
    assert list(rows[0]) == ["file", "label", "effusion", "nodule", "cardiomegaly"]
    assert all(r["label"] == r["effusion"] and {r[f] for f in FINDINGS[:3]} <= {"0", "1"} for r in rows)
    manifest, cache = ingest(archive, tmp_path, CohortConfig(name="x", preset="dicom", image_size=32))
    assert len(manifest.items) == 40 and manifest.attribute_names == ["sex", "age_group"]
    assert [item.label for item in manifest.items] == [int(r["effusion"]) for r in rows]
    assert load_cohort_arrays(cache).images.shape == (40, 32, 32, 1)
    assert cohort_config(3) == {"preset": "dicom", "task": "multilabel", "finding_columns": list(FINDINGS[:3])}


def test_findings_archive_is_deterministic_per_seed(tmp_path: Path) -> None:
    first = write_findings_archive(tmp_path / "a.zip", n=12, seed=4, findings=8, image_size=32).read_bytes()
    assert write_findings_archive(tmp_path / "b.zip", n=12, seed=4, findings=8, image_size=32).read_bytes() == first
    assert write_findings_archive(tmp_path / "c.zip", n=12, seed=5, findings=8, image_size=32).read_bytes() != first


@pytest.mark.parametrize("findings", [0, 9])
def test_a_finding_count_outside_1_to_8_is_refused_before_anything_is_written(tmp_path: Path, findings: int) -> None:
    with pytest.raises(ValueError, match=r"findings must be 1\.\.8"):
        write_findings_archive(tmp_path / "x.zip", n=5, seed=0, findings=findings)
    assert not (tmp_path / "x.zip").exists()


def test_every_finding_has_its_own_sign() -> None:
    assert tuple(SIGNS) == FINDINGS


def test_finding_frequencies_and_co_occurrence_are_as_documented(tmp_path: Path) -> None:
    n = 800
    rows = manifest_rows(write_findings_archive(tmp_path / "cxr.zip", n=n, seed=0, findings=8, image_size=16))
    labels = np.array([[int(r[f]) for f in FINDINGS] for r in rows])
    for k, finding in enumerate(FINDINGS):
        p = expected_frequency(finding)
        assert abs(labels[:, k].mean() - p) < 4 * np.sqrt(p * (1 - p) / n), finding
    correlation = np.corrcoef(labels.T)[np.triu_indices(len(FINDINGS), 1)]
    assert correlation.mean() > 0.03, "a shared patient severity makes findings co-occur"


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_sign_is_visible_and_fainter_for_older_women_by_the_documented_factor(finding: str) -> None:
    """The same chest (same random stream) with and without the finding, at full and at the planted
    faint strength: the sign is as large as documented, and FAINT_FACTOR times as large when faint."""
    present = np.array([f == finding for f in FINDINGS])

    def radiograph(shown: np.ndarray, strength: float) -> np.ndarray:
        return ChestRenderer(64, FINDINGS, np.random.default_rng(7)).radiograph(shown, strength)

    absent = radiograph(np.zeros(len(FINDINGS), dtype=bool), 1.0)
    full = radiograph(present, 1.0) - absent
    faint = radiograph(present, FAINT_FACTOR) - absent
    peak = np.abs(full).max()
    assert 0.3 * CONTRAST[finding] < peak < 2.0 * CONTRAST[finding]
    unclipped = (absent > 0) & (absent < 1000) & (absent + full > 0) & (absent + full < 1000)
    np.testing.assert_allclose(faint[unclipped], FAINT_FACTOR * full[unclipped], atol=1e-2)


def test_findings_are_learnable_but_far_from_solved_and_worse_for_older_women(tmp_path: Path) -> None:
    """Logistic regression on the cached 32×32 pixels averaged to 16×16, fitted on half the images:
    each finding's AUC is above chance and below 0.98, and lower in the faint cells on average."""
    n = 1000
    archive = write_findings_archive(tmp_path / "cxr.zip", n=n, seed=1, findings=8, image_size=32)
    manifest, cache = ingest(archive, tmp_path, CohortConfig(name="x", preset="dicom", image_size=32))
    images = load_cohort_arrays(cache).images.astype(np.float32)
    pixels = images.reshape(n, 16, 2, 16, 2).mean(axis=(2, 4)).reshape(n, -1)
    pixels = (pixels - pixels.mean(axis=0)) / (pixels.std(axis=0) + 1e-6)
    faint = np.array(
        [
            item.attributes["sex"] == "female" and item.attributes["age_group"] in ("60-74", ">=75")
            for item in manifest.items
        ]
    )
    rows = manifest_rows(archive)
    train, test = np.arange(n) < n // 2, np.arange(n) >= n // 2
    gaps = []
    for finding in FINDINGS:
        y = np.array([int(r[finding]) for r in rows])
        score = LogisticRegression(C=0.01, max_iter=2000).fit(pixels[train], y[train]).decision_function(pixels)
        auc = roc_auc_score(y[test], score[test])
        assert 0.58 < auc < 0.98, (finding, auc)
        gaps.append(
            roc_auc_score(y[test & ~faint], score[test & ~faint]) - roc_auc_score(y[test & faint], score[test & faint])
        )
    assert np.mean(gaps) > 0.03, gaps
