"""The patient-clustered bootstrap: a patient's images move together, a cluster of one sample is the
unclustered bootstrap bit for bit, and intervals widen as they should when images repeat a patient."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from synth import grouping, simulate

from app.fairness.engine import PredictionSet, build_report, compare_models, resample
from app.fairness.engine.groups import build_design
from app.fairness.engine.kernel import column_block, plan_column
from app.fairness.engine.resample import Clusters

ATTRIBUTES = ["sex", "skin_type"]


def _patients(n: int, seed: int) -> np.ndarray:
    """Patient keys of uneven size, in no particular order."""
    return np.random.default_rng(seed).integers(0, n // 4, n).astype(str)


def test_a_patients_images_move_together_and_each_stratum_draws_its_own_patients() -> None:
    p = simulate(800, 1)
    design = build_design(p.y_true, p.groups, ATTRIBUTES, sort_by=p.exit_scores[:, 0])
    keys = _patients(800, 2)
    clusters = Clusters.build(keys, design.strata_bounds, design.order)
    weights = resample.resample_block(design.strata_bounds, 50, np.random.default_rng(0), clusters).astype(np.int64)
    internal_keys = keys[design.order]
    for key in np.unique(internal_keys)[:100]:
        members = np.flatnonzero(internal_keys == key)
        assert (weights[:, members] == weights[:, members[:1]]).all()  # the same count for every image
    # Per stratum, as many patient draws as the stratum holds patients (each counted once).
    first = {}
    for caller, key in enumerate(keys):
        first.setdefault(key, caller)
    position = np.argsort(design.order)
    homes = np.searchsorted(design.strata_bounds, position[list(first.values())], side="right") - 1
    draws_per_patient = np.zeros((50, len(first)), dtype=np.int64)
    for j, key in enumerate(first):
        draws_per_patient[:, j] = weights[:, position[first[key]]]
    for s, (lo, hi) in enumerate(pairwise(clusters.bounds)):
        assert (draws_per_patient[:, homes == s].sum(axis=1) == hi - lo).all()
    assert not (weights == weights[:1]).all()  # resamples differ


def test_clusters_of_one_sample_give_exactly_the_unclustered_report() -> None:
    p = simulate(1500, 4, n_exits=3, group_shift=0.8)
    plain = build_report(p, attributes=ATTRIBUTES, n_boot=60, seed=9, min_count=5)
    singletons = build_report(
        dataclasses.replace(p, clusters=np.arange(1500)), attributes=ATTRIBUTES, n_boot=60, seed=9, min_count=5
    )
    assert singletons["config"].pop("n_clusters") == 1500
    assert singletons == plain  # bit for bit: the same draws, the same sums


def test_unclustered_resamples_are_the_plain_stratified_draws() -> None:
    """The resampler without clusters draws exactly as before clusters existed."""
    p = simulate(700, 3)
    bounds = build_design(p.y_true, p.groups, ATTRIBUTES).strata_bounds
    expected = np.empty((8, 700), dtype=np.uint8)
    rng = np.random.default_rng(11)
    draws = np.empty((8, 700), dtype=np.int64)
    for start, end in pairwise(bounds):
        draws[:, start:end] = rng.integers(start, end, size=(8, end - start))
    for row in range(8):
        expected[row] = np.bincount(draws[row], minlength=700)
    assert np.array_equal(resample.resample_block(bounds, 8, np.random.default_rng(11)), expected)


def _repeated_patients(n_patients: int, images: int, seed: int):
    """Each patient's image repeated ``images`` times (same label, score and groups)."""
    base = simulate(n_patients, seed)
    take = np.repeat(np.arange(n_patients), images)
    return base, dataclasses.replace(
        base,
        y_true=base.y_true[take],
        exit_scores=base.exit_scores[take],
        groups={a: v[take] for a, v in base.groups.items()},
        sample_ids=np.arange(len(take)),
        clusters=take.astype(str),
    )


def _width(report: dict, metric: str = "auc") -> float:
    value = grouping(report, "overall")["groups"][0]["metrics"][metric]
    return value["ci_high"] - value["ci_low"]


def test_repeated_images_of_one_patient_do_not_narrow_the_clustered_interval() -> None:
    base, repeated = _repeated_patients(400, 8, 5)
    once = build_report(base, attributes=["sex"], n_boot=300, seed=1)
    clustered = build_report(repeated, attributes=["sex"], n_boot=300, seed=1)
    naive = build_report(dataclasses.replace(repeated, clusters=None), attributes=["sex"], n_boot=300, seed=1)
    assert 0.75 < _width(clustered) / _width(once) < 1.3  # eight copies carry one patient's evidence
    assert _width(naive) < 0.5 * _width(once)  # treating copies as patients overstates precision
    pfd = grouping(clustered, "sex")["gaps"]["pfd"]
    assert pfd["ci_low"] <= pfd["value"] <= pfd["ci_high"]


def test_the_comparison_resamples_the_reference_patients() -> None:
    _, repeated = _repeated_patients(300, 6, 7)
    other = dataclasses.replace(repeated, exit_scores=np.clip(repeated.exit_scores + 0.05, 0, 1))
    kwargs = dict(attributes=["sex"], n_boot=300, seed=2)
    clustered = compare_models({"ref": repeated, "new": other}, **kwargs)
    naive = compare_models(
        {"ref": dataclasses.replace(repeated, clusters=None), "new": dataclasses.replace(other, clusters=None)},
        **kwargs,
    )

    def brier_width(result: dict) -> float:
        row = next(r for r in result["comparisons"][0]["differences"] if r["metric"] == "brier")
        return row["ci_high"] - row["ci_low"]

    assert brier_width(clustered) > 1.8 * brier_width(naive)
    assert clustered["config"]["n_clusters"] == 300 and "n_clusters" not in naive["config"]


def test_cluster_weighted_statistics_equal_those_of_the_expanded_resample() -> None:
    """Group sizes vary between cluster resamples: every denominator comes from the resample."""
    p = simulate(900, 6)
    y, s = p.y_true, np.round(p.exit_scores[:, 0], 2)  # plenty of ties
    design = build_design(y, p.groups, ["sex"], sort_by=s)
    plan = plan_column(s[design.order], y[design.order], design, 0.5)
    clusters = Clusters.build(_patients(900, 3), design.strata_bounds, design.order)
    weights = resample.resample_block(design.strata_bounds, 4, np.random.default_rng(1), clusters)
    stats = column_block(plan, weights, dtype=np.float64, weighted_totals=True)
    sex = next(g for g in design.groupings if g.attribute == "sex").codes
    for row in range(4):
        index = np.repeat(design.order, weights[row])
        ys, ss, gs = y[index], s[index], np.repeat(sex, weights[row])
        for k in range(2):
            m = gs == k
            assert stats["sex"]["auc"][row, k] == pytest.approx(roc_auc_score(ys[m], ss[m]), abs=1e-12)
            pos, neg = ss[m & (ys == 1)], ss[ys == 0]
            pf = ((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean()
            assert stats["sex"]["pf"][row, k] == pytest.approx(pf, abs=1e-12)
            assert stats["sex"]["tpr"][row, k] == pytest.approx((ss[m & (ys == 1)] >= 0.5).mean(), abs=1e-12)
            assert stats["sex"]["fpr"][row, k] == pytest.approx((ss[m & (ys == 0)] >= 0.5).mean(), abs=1e-12)
            brier = ((ss[m] - ys[m]) ** 2).mean()
            assert stats["sex"]["brier"][row, k] == pytest.approx(brier, abs=1e-12)


def test_resamples_that_draw_no_positive_of_a_group_are_left_out_not_fatal() -> None:
    """Two patients of group B each have a negative image first and a positive one second: both
    belong to B's negative stratum, so about one resample in eight draws no positive of B."""
    rng = np.random.default_rng(0)
    a_y = (rng.random(600) < 0.3).astype(np.int64)
    y = np.concatenate([a_y, [0, 1, 0, 1], np.zeros(28, dtype=np.int64)])
    group = np.array(["A"] * 600 + ["B"] * 32, dtype=object)
    keys = np.concatenate([np.arange(600).astype(str), ["p1", "p1", "p2", "p2"], [f"n{i}" for i in range(28)]])
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, len(y)) + 1.5 * y - 1.0)))
    p = PredictionSet(y_true=y, exit_scores=scores[:, None], groups={"grp": group}, threshold=0.5, clusters=keys)
    report = build_report(p, attributes=["grp"], n_boot=200, min_count=1)
    b = next(g for g in grouping(report, "grp")["groups"] if g["group"] == "B")
    for metric in ("auc", "pf"):
        value = b["metrics"][metric]
        assert value["ci_low"] is not None and value["ci_low"] <= value["ci_high"]
    pfd = grouping(report, "grp")["gaps"]["pfd"]
    assert pfd["ci_low"] <= pfd["value"] <= pfd["ci_high"]
    assert next(t for t in grouping(report, "grp")["tests"]["pf"] if t["group"] == "B")["p_value"] is not None
