"""Paired comparison: same resamples for every model, matched by sample id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synth import simulate

from app.fairness.engine import PredictionSet, compare_models

ATTRIBUTES = ["sex", "skin_type"]


def _shuffled(p: PredictionSet, seed: int) -> PredictionSet:
    perm = np.random.default_rng(seed).permutation(len(p.y_true))
    return PredictionSet(
        y_true=p.y_true[perm],
        exit_scores=p.exit_scores[perm],
        groups={k: v[perm] for k, v in p.groups.items()},
        threshold=p.threshold,
        sample_ids=p.sample_ids[perm],
    )


def test_identical_models_differ_by_exactly_zero_with_p_one() -> None:
    p = simulate(1500, 1)
    result = compare_models({"a": p, "a again": _shuffled(p, 2)}, attributes=ATTRIBUTES, n_boot=200)
    assert result["n_matched"] == 1500
    rows = result["comparisons"][0]["differences"]
    assert {(r["attribute"], r["metric"]) for r in rows} >= {
        ("overall", "auc"),
        ("sex", "pfd"),
        ("skin_type", "eopp1"),
        ("skin_type", "eopp0"),
        ("skin_type", "eodd"),
        ("sex×skin_type", "worst_group_auc"),
    }
    for r in rows:
        if r["status"] == "ok":
            assert r["difference"] == 0.0 and r["ci_low"] == 0.0 and r["ci_high"] == 0.0
            assert r["p_value"] == pytest.approx(1.0)


def test_a_better_model_has_a_positive_auc_difference() -> None:
    weak, strong = simulate(3000, 3, shift=0.8), simulate(3000, 3, shift=1.6)
    result = compare_models({"weak": weak, "strong": strong}, attributes=ATTRIBUTES, n_boot=300)
    row = next(r for r in result["comparisons"][0]["differences"] if r["metric"] == "auc")
    assert row["difference"] == pytest.approx(row["value_model"] - row["value_reference"])
    assert row["difference"] > 0 and row["ci_low"] > 0
    assert row["p_value"] < 1e-3 and row["p_holm"] >= row["p_value"]


def test_paired_intervals_are_narrower_than_unpaired_noise() -> None:
    """Two models that differ only slightly: the paired interval is far narrower than either AUC's."""
    base = simulate(3000, 5)
    scores = np.clip(base.exit_scores + np.random.default_rng(0).normal(0, 0.01, base.exit_scores.shape), 0, 1)
    other = replace(base, exit_scores=scores)
    result = compare_models({"base": base, "other": other}, attributes=ATTRIBUTES, n_boot=300)
    row = next(r for r in result["comparisons"][0]["differences"] if r["metric"] == "auc")
    assert row["ci_high"] - row["ci_low"] < 0.01


def test_samples_are_matched_by_id_and_labels_must_agree() -> None:
    p = simulate(400, 6)
    subset = PredictionSet(
        y_true=p.y_true[:300],
        exit_scores=p.exit_scores[:300],
        groups={k: v[:300] for k, v in p.groups.items()},
        threshold=0.5,
        sample_ids=p.sample_ids[:300],
    )
    assert compare_models({"all": p, "part": subset}, attributes=ATTRIBUTES, n_boot=20)["n_matched"] == 300
    flipped = replace(p, y_true=1 - p.y_true)
    with pytest.raises(ValueError, match="different labels"):
        compare_models({"a": p, "b": flipped}, attributes=ATTRIBUTES, n_boot=0)
    with pytest.raises(ValueError, match="at least two"):
        compare_models({"a": p}, attributes=ATTRIBUTES, n_boot=0)
