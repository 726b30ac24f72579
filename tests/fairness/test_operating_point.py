"""Operating-threshold rules: target sensitivity and the group-constrained rule (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from app.fairness.engine import thresholds as engine_thresholds
from app.fairness.engine.thresholds import (
    GroupBand,
    InfeasibleBand,
    OperatingPoint,
    OperatingRule,
    choose_operating_point,
    group_rates,
    sensitivity_threshold,
    youden_threshold,
)

LABELS = ("I-II", "III-IV", "V", "VI")


def cohort(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores whose negatives drift upward with the group, so Youden's threshold leaves the groups'
    FPRs far apart (the issue's skin-type-VI pattern)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, n)
    y = (rng.random(n) < 0.35).astype(np.int64)
    logit = rng.normal(0, 1, n) + 2.0 * y - 1.0 + 0.6 * codes * (1 - y)
    return y, np.round(1 / (1 + np.exp(-logit)), 4), codes  # rounded: tied scores on purpose


def spread(values: np.ndarray) -> float:
    return float(values.max() - values.min())


def test_constrained_keeps_every_group_in_band_with_the_best_j_that_does() -> None:
    y, s, codes = cohort()
    youden = group_rates(y, s, codes, LABELS, youden_threshold(y, s))
    assert spread(youden.fpr) > 0.3  # the unconstrained operating point is far out of band
    band = GroupBand(fpr_band=0.1, tpr_band=0.25, min_tpr=0.5, min_group_count=20)
    point = choose_operating_point(y, s, OperatingRule("constrained", band=band), codes, LABELS)
    rates = group_rates(y, s, codes, LABELS, point.threshold)
    assert point.constraint_met is True and point.fallback is None
    assert spread(rates.fpr) <= 0.1 and spread(rates.tpr) <= 0.25 and rates.tpr.min() >= 0.5
    np.testing.assert_allclose(point.groups.fpr, rates.fpr)
    assert point.groups.held is not None and point.groups.held.all()

    def j(t: float) -> float:
        return float((s[y == 1] >= t).mean() - (s[y == 0] >= t).mean())

    in_band = [
        t
        for t in np.unique(s)
        if spread((r := group_rates(y, s, codes, LABELS, t)).fpr) <= 0.1 + 1e-12
        and spread(r.tpr) <= 0.25 + 1e-12
        and r.tpr.min() >= 0.5 - 1e-12
    ]
    assert point.feasible == len(in_band) and point.candidates == len(np.unique(s))
    assert j(point.threshold) == pytest.approx(max(j(t) for t in in_band))


def test_blocks_of_candidates_give_the_same_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    y, s, codes = cohort(seed=1)
    rule = OperatingRule("constrained", band=GroupBand(fpr_band=0.08, min_group_count=20))
    whole = choose_operating_point(y, s, rule, codes, LABELS)
    monkeypatch.setattr(engine_thresholds, "_BLOCK_CELLS", 7)  # a block of one candidate at a time
    blocked = choose_operating_point(y, s, rule, codes, LABELS)
    assert blocked.threshold == whole.threshold
    assert (blocked.candidates, blocked.feasible) == (whole.candidates, whole.feasible)
    assert whole.feasible > 0


def test_an_impossible_band_fails_unless_youden_is_accepted() -> None:
    y, s, codes = cohort()
    band = GroupBand(max_fpr=0.05, min_tpr=0.95)
    with pytest.raises(InfeasibleBand, match=r"none of \d+ thresholds keeps FPR ≤ 0.05, TPR ≥ 0.95"):
        choose_operating_point(y, s, OperatingRule("constrained", band=band), codes, LABELS)
    point = choose_operating_point(y, s, OperatingRule("constrained", band=band, on_infeasible="youden"), codes, LABELS)
    assert point.threshold == youden_threshold(y, s)
    assert point.constraint_met is False and point.fallback == "youden" and point.feasible == 0


def test_groups_below_the_minimum_count_are_reported_but_not_held() -> None:
    y, s, codes = cohort()
    codes, s = codes.copy(), s.copy()
    codes[np.flatnonzero(codes == 3)[12:]] = -1  # group VI keeps 12 samples; the rest join no group
    s[(codes == 3) & (y == 0)] = 0.95  # and every one of its negatives scores near the top
    n_pos, n_neg = int(((codes == 3) & (y == 1)).sum()), int(((codes == 3) & (y == 0)).sum())
    assert min(n_pos, n_neg) >= 1 and max(n_pos, n_neg) < 12

    def choose(min_group_count: int) -> OperatingPoint:
        band = GroupBand(fpr_band=0.1, max_fpr=0.5, min_group_count=min_group_count)
        return choose_operating_point(y, s, OperatingRule("constrained", band=band), codes, LABELS)

    held, left_out = choose(1), choose(12)
    assert held.groups.held is not None and held.groups.held.all()
    assert held.threshold > 0.95  # holding group VI to the band forces the threshold above its negatives
    assert left_out.groups.held is not None and left_out.groups.held.tolist() == [True, True, True, False]
    assert spread(left_out.groups.fpr[:3]) <= 0.1 and left_out.groups.fpr[3] == 1.0  # reported, not held
    assert left_out.feasible is not None and held.feasible is not None and left_out.feasible > held.feasible
    assert [r["held"] for r in left_out.groups.rows()] == [True, True, True, False]


def test_no_group_large_enough_meets_nothing() -> None:
    y, s, codes = cohort(n=200)
    rule = OperatingRule("constrained", band=GroupBand(fpr_band=0.5, min_group_count=1000), on_infeasible="youden")
    point = choose_operating_point(y, s, rule, codes, LABELS)
    assert point.constraint_met is False and point.groups.held is not None and not point.groups.held.any()


def test_target_sensitivity_reaches_the_target_with_the_highest_threshold() -> None:
    y, s, codes = cohort()
    for target in (0.5, 0.8, 0.95, 1.0):
        t = sensitivity_threshold(y, s, target)
        assert (s[y == 1] >= t).mean() >= target
        higher = s[s > t]
        assert len(higher) == 0 or (s[y == 1] >= higher.min()).mean() < target
        point = choose_operating_point(
            y, s, OperatingRule("target_sensitivity", target_sensitivity=target), codes, LABELS
        )
        assert point.threshold == t and point.constraint_met is None and point.groups.held is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GroupBand(), "at least one of"),
        (lambda: GroupBand(fpr_band=0.1, min_group_count=0), "min_group_count"),
        (lambda: OperatingRule("target_sensitivity"), "needs target_sensitivity"),
        (lambda: OperatingRule("constrained"), "band goes with the constrained rule"),
        (lambda: OperatingRule("youden", band=GroupBand(fpr_band=0.1)), "band goes with the constrained rule"),
    ],
)
def test_malformed_rules_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
