"""The stratified weighted bootstrap: exactness of weighted sums, stratification, determinism,
and interval coverage near nominal on simulated data."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from synth import simulate

from app.fairness.engine import build_report, resample
from app.fairness.engine.bootstrap import run_bootstrap
from app.fairness.engine.groups import build_design
from app.fairness.engine.intervals import percentile
from app.fairness.engine.kernel import WeightBlock, column_block, plan_column


def _design_and_plan(n: int, seed: int, sorted_by_column: bool = True):
    """``sorted_by_column=False``: the design is sorted by other scores (as for an exit that is not
    the served policy), so the column has its own local order."""
    p = simulate(n, seed)
    y, s = p.y_true, np.round(p.exit_scores[:, 0], 2)  # rounded: plenty of ties
    other = np.random.default_rng(seed + 1).random(n)
    design = build_design(y, p.groups, ["sex", "skin_type"], sort_by=s if sorted_by_column else other)
    plan = plan_column(s[design.order], y[design.order], design, 0.5)
    assert (plan.local is None) == sorted_by_column
    return p, y, s, design, plan


@pytest.mark.parametrize("sorted_by_column", [True, False])
def test_weighted_statistics_equal_those_of_the_expanded_resample(sorted_by_column: bool) -> None:
    _p, y, s, design, plan = _design_and_plan(600, 1, sorted_by_column)
    weights = resample.resample_block(design.strata_bounds, 4, np.random.default_rng(3))
    stats = column_block(plan, weights, dtype=np.float64)
    sex = grouping_codes(design, "sex")
    for row in range(4):
        index = np.repeat(design.order, weights[row])  # caller's indices, each drawn count times
        ys, ss, gs = y[index], s[index], sex[np.repeat(np.arange(len(y)), weights[row])]
        assert stats["overall"]["auc"][row, 0] == pytest.approx(roc_auc_score(ys, ss), abs=1e-12)
        for k in range(2):
            m = gs == k
            assert stats["sex"]["auc"][row, k] == pytest.approx(roc_auc_score(ys[m], ss[m]), abs=1e-12)
            pos, neg = ss[m & (ys == 1)], ss[ys == 0]
            pf = ((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean()
            assert stats["sex"]["pf"][row, k] == pytest.approx(pf, abs=1e-12)
            tpr = ((ss >= 0.5) & m & (ys == 1)).sum() / (m & (ys == 1)).sum()
            assert stats["sex"]["tpr"][row, k] == pytest.approx(tpr, abs=1e-12)


@pytest.mark.parametrize("b", [1, 3, 4, 5, 8, 37])
def test_packed_gathers_equal_plain_takes(b: int) -> None:
    """``WeightBlock`` packs resamples four to a word (padding the last word); every gather must give
    exactly the weights a plain take does, for any block size and any order, repeats included."""
    rng = np.random.default_rng(b)
    weights = rng.integers(0, 256, (b, 500)).astype(np.uint8)
    index = rng.integers(0, 500, 1200)
    block = WeightBlock(weights)
    for order in (index, np.arange(500), np.array([], dtype=np.int64)):
        gathered = block.gather(order)
        assert gathered.dtype == np.int32
        np.testing.assert_array_equal(gathered, np.take(weights, order, axis=1))


def grouping_codes(design, attribute: str) -> np.ndarray:
    """Group codes in the design's internal order."""
    return next(g for g in design.groupings if g.attribute == attribute).codes


@pytest.mark.parametrize("many_strata", [False, True])
def test_resamples_keep_every_stratum_size(monkeypatch: pytest.MonkeyPatch, many_strata: bool) -> None:
    if many_strata:  # the vectorised path for designs with thousands of strata
        monkeypatch.setattr(resample, "MANY_STRATA", 1)
    _, _, _, design, _ = _design_and_plan(500, 2)
    weights = resample.resample_block(design.strata_bounds, 400, np.random.default_rng(0)).astype(np.int64)
    sizes = np.diff(design.strata_bounds)
    sums = np.add.reduceat(weights, design.strata_bounds[:-1], axis=1)
    assert (sums == sizes).all()
    # Multinomial(m, 1/m) counts: mean 1, variance 1 - 1/m, drawn at least once w.p. 1 - (1 - 1/m)^m.
    m = np.repeat(sizes, sizes).astype(float)
    assert weights.mean() == pytest.approx(1.0)
    assert weights.var() == pytest.approx((1 - 1 / m).mean(), abs=0.02)
    assert (weights > 0).mean() == pytest.approx((1 - (1 - 1 / m) ** m).mean(), abs=0.01)


def test_bootstrap_is_deterministic_and_independent_of_threads() -> None:
    _, _, _, design, plan = _design_and_plan(400, 3)
    one = run_bootstrap(design, [plan], 70, seed=5, workers=1)[0]
    two = run_bootstrap(design, [plan], 70, seed=5, workers=2)[0]
    other = run_bootstrap(design, [plan], 70, seed=6, workers=2)[0]
    for metric in ("auc", "pf", "ece", "tpr"):
        np.testing.assert_array_equal(one["sex"][metric], two["sex"][metric])
    assert not np.array_equal(one["sex"]["auc"], other["sex"]["auc"])


def test_reports_are_reproducible_for_a_seed() -> None:
    p = simulate(800, 4)
    first = build_report(p, attributes=["sex", "age_group"], n_boot=60, seed=9)
    again = build_report(p, attributes=["sex", "age_group"], n_boot=60, seed=9)
    assert first == again


def test_interval_coverage_is_near_nominal() -> None:
    """200 simulated cohorts with known AUC and PF: the 95 % intervals should cover ~95 %."""
    rng = np.random.default_rng(20240501)
    d_a, d_b = 1.0, 0.5  # separation of positives in group a and b; negatives are N(0, 1) in both
    true_auc_a = NormalDist().cdf(d_a / np.sqrt(2))
    true_pf_b = NormalDist().cdf(d_b / np.sqrt(2))
    n_sim, n = 200, 400
    cover_auc = cover_pf = 0
    for _ in range(n_sim):
        group = rng.choice(np.array(["a", "b"], dtype=object), n)
        y = (rng.random(n) < 0.4).astype(np.int64)
        shift = np.where(group == "a", d_a, d_b)
        score = 1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, n) + shift * y)))
        design = build_design(y, {"g": group}, ["g"], sort_by=score)
        plan = plan_column(score[design.order], y[design.order], design, 0.5)
        boot = run_bootstrap(design, [plan], 200, seed=int(rng.integers(1 << 30)), workers=1)[0]["g"]
        low, high = percentile(boot["auc"], 0.95)
        cover_auc += low[0] <= true_auc_a <= high[0]
        low, high = percentile(boot["pf"], 0.95)
        cover_pf += low[1] <= true_pf_b <= high[1]
    # Binomial(200, 0.95) has SD 1.5 %: a band of 0.88-0.99 fails only for real miscalibration.
    assert 0.88 <= cover_auc / n_sim <= 0.99
    assert 0.88 <= cover_pf / n_sim <= 0.99
