"""Per-sample thresholds (pooled out-of-fold predictions, each fold model at its own threshold): every
decision the engine counts is ``score >= threshold[i]``, in whatever order the engine takes samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synth import grouping, simulate

from app.fairness.engine import PredictionSet, build_report, compare_models
from app.fairness.report_html import render_html

ATTRIBUTES = ["sex", "skin_type"]
FOLD_THRESHOLDS = (0.3, 0.5, 0.7)


def _pooled(n: int, seed: int, n_exits: int = 1) -> PredictionSet:
    """Folds assigned at random (not in blocks), each with its own threshold."""
    p = simulate(n, seed, group_shift=0.8, n_exits=n_exits)
    fold = np.random.default_rng(seed + 1).integers(0, len(FOLD_THRESHOLDS), n)
    return dataclasses.replace(
        p, threshold=np.asarray(FOLD_THRESHOLDS)[fold], folds=np.array([f"s0/f{k}" for k in fold], dtype=object)
    )


def _fold(p: PredictionSet, k: int) -> PredictionSet:
    mask = p.folds == f"s0/f{k}"
    return dataclasses.replace(
        p,
        y_true=p.y_true[mask],
        exit_scores=p.exit_scores[mask],
        groups={a: v[mask] for a, v in p.groups.items()},
        threshold=FOLD_THRESHOLDS[k],
        exit_index=None if p.exit_index is None else p.exit_index[mask],
        sample_ids=None,
        folds=None,
    )


def _counts(report: dict, attribute: str, exit_key: object) -> list[tuple[int, int]]:
    """(true positives, false positives) per group, read back from TPR and FPR."""
    return [
        (round(g["metrics"]["tpr"]["value"] * g["n_pos"]), round(g["metrics"]["fpr"]["value"] * g["n_neg"]))
        for g in grouping(report, attribute, exit_key)["groups"]
    ]


def test_each_fold_is_counted_at_its_own_threshold() -> None:
    p = _pooled(3000, 5, n_exits=3)
    pooled = build_report(p, attributes=ATTRIBUTES, intersections=False, n_boot=0)
    per_fold = [
        build_report(_fold(p, k), attributes=ATTRIBUTES, intersections=False, n_boot=0)
        for k in range(len(FOLD_THRESHOLDS))
    ]
    for exit_key in (0, 1, 2, "policy"):
        for attribute in ["overall", *ATTRIBUTES]:
            summed = np.sum([_counts(r, attribute, exit_key) for r in per_fold], axis=0)
            assert [tuple(c) for c in summed] == _counts(pooled, attribute, exit_key), (exit_key, attribute)
    scores = p.policy_scores
    called = scores >= p.threshold
    sex = grouping(pooled, "sex")
    for label, rates in sex["fairlearn"]["by_group"].items():
        mine = p.groups["sex"] == label
        assert rates["tpr"] == pytest.approx(called[mine & (p.y_true == 1)].mean(), abs=1e-12)
        assert rates["fpr"] == pytest.approx(called[mine & (p.y_true == 0)].mean(), abs=1e-12)
    assert pooled["config"]["threshold_per_sample"] is True
    assert pooled["config"]["threshold"] == float(np.median(p.threshold))
    assert pooled["config"]["threshold_range"] == [0.3, 0.7]
    assert "threshold_per_sample" not in per_fold[0]["config"]
    page = render_html(pooled)
    assert "each sample at its own fold model&#39;s threshold (0.300–0.700; the median is shown)" in page


def test_a_constant_array_is_the_float_exactly() -> None:
    p = simulate(2000, 7, group_shift=0.8, n_exits=3)
    as_float = build_report(p, attributes=ATTRIBUTES, n_boot=50, seed=3)
    as_array = build_report(
        dataclasses.replace(p, threshold=np.full(len(p.y_true), p.threshold)), attributes=ATTRIBUTES, n_boot=50, seed=3
    )
    assert as_array["config"].pop("threshold_per_sample") is True
    assert as_array["config"].pop("threshold_range") == [0.5, 0.5]
    assert as_array == as_float


def test_a_comparison_pairs_each_sample_with_its_own_threshold() -> None:
    p = _pooled(1500, 2)
    perm = np.random.default_rng(9).permutation(len(p.y_true))
    shuffled = dataclasses.replace(
        p,
        y_true=p.y_true[perm],
        exit_scores=p.exit_scores[perm],
        groups={a: v[perm] for a, v in p.groups.items()},
        threshold=p.threshold[perm],
        sample_ids=p.sample_ids[perm],
        folds=p.folds[perm],
    )
    result = compare_models({"a": p, "a shuffled": shuffled}, attributes=ATTRIBUTES, n_boot=50)
    rows = [r for r in result["comparisons"][0]["differences"] if r["status"] == "ok"]
    assert {r["metric"] for r in rows} >= {"eopp1", "eodd"}
    assert all(r["difference"] == 0.0 for r in rows)
    float_model = dataclasses.replace(p, threshold=0.5)
    result = compare_models({"a": p, "at 0.5": float_model}, attributes=ATTRIBUTES, n_boot=0)
    assert any(r["difference"] != 0.0 for r in result["comparisons"][0]["differences"] if r["metric"] == "eopp1")


@pytest.mark.parametrize("threshold", [np.array([0.5, 0.5]), np.array([[0.5]] * 3), np.array([0.5, np.nan, 0.5])])
def test_a_threshold_array_must_be_finite_with_one_entry_per_sample(threshold: np.ndarray) -> None:
    with pytest.raises(ValueError, match="threshold"):
        p = PredictionSet(
            y_true=np.array([0, 1, 1]), exit_scores=np.array([[0.1], [0.9], [0.6]]), groups={}, threshold=threshold
        )
        build_report(p, attributes=[], n_boot=0)
