"""The Fairlearn reference fixture of docs/metrics.md, exactly (values computed with fairlearn 0.15.0)."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
)
from synth import group, grouping

from app.fairness.engine import PredictionSet, build_report

Y_TRUE = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
Y_PRED = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
GROUP = ["b", "b", "a", "b", "b", "c", "c", "c", "a", "a", "c", "a", "b", "c", "c", "b", "c", "c"]

BY_GROUP = {  # group: (n, selection rate, TPR, FPR)
    "a": (4, 0.75, 0.5, 1.0),
    "b": (6, 0.50, 0.6, 0.0),
    "c": (8, 0.50, 0.4, 0.6667),
}
OVERALL = (18, 0.5556, 0.5, 0.6667)
TABLE = {  # metric: (between_groups, to_overall)
    "demographic_parity_difference": (0.25, 0.194444),
    "demographic_parity_ratio": (0.666667, 0.740741),
    "equalized_odds_difference": (1.0, 0.666667),
    "equalized_odds_difference_mean": (0.6, 0.383333),
    "equalized_odds_ratio": (0.0, 0.0),
    "equal_opportunity_difference": (0.2, 0.1),
    "equal_opportunity_ratio": (0.666667, 0.8),
}


@pytest.fixture(scope="module")
def report() -> dict:
    # y_pred as 0/1 scores with threshold 0.5 gives exactly y_pred at the operating point.
    predictions = PredictionSet(
        y_true=np.array(Y_TRUE),
        exit_scores=np.array(Y_PRED, dtype=float)[:, None],
        groups={"group": np.array(GROUP, dtype=object)},
        threshold=0.5,
    )
    return build_report(predictions, attributes=["group"], n_boot=50, min_count=1)


def test_per_group_rates_match_the_reference_table(report: dict) -> None:
    block = grouping(report, "group")["fairlearn"]
    for label, (n, selection, tpr, fpr) in BY_GROUP.items():
        assert group(report, "group", label)["n"] == n
        rates = block["by_group"][label]
        assert rates["selection_rate"] == pytest.approx(selection, abs=5e-5)
        assert rates["tpr"] == pytest.approx(tpr, abs=5e-5)
        assert rates["fpr"] == pytest.approx(fpr, abs=5e-5)
    n, selection, tpr, fpr = OVERALL
    assert report["population"]["n"] == n
    assert block["overall"]["selection_rate"] == pytest.approx(selection, abs=5e-5)
    assert block["overall"]["tpr"] == pytest.approx(tpr, abs=5e-5)
    assert block["overall"]["fpr"] == pytest.approx(fpr, abs=5e-5)


@pytest.mark.parametrize("metric", sorted(TABLE))
def test_difference_and_ratio_table_matches_the_reference(report: dict, metric: str) -> None:
    block = grouping(report, "group")["fairlearn"]
    between, to_overall = TABLE[metric]
    assert block["between_groups"][metric] == pytest.approx(between, abs=5e-7)
    assert block["to_overall"][metric] == pytest.approx(to_overall, abs=5e-7)


@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_fairlearn_block_equals_fairlearn_itself(report: dict, method: str) -> None:
    kw = {"sensitive_features": GROUP, "method": method}
    expected = {
        "demographic_parity_difference": demographic_parity_difference(Y_TRUE, Y_PRED, **kw),
        "demographic_parity_ratio": demographic_parity_ratio(Y_TRUE, Y_PRED, **kw),
        "equalized_odds_difference": equalized_odds_difference(Y_TRUE, Y_PRED, **kw),
        "equalized_odds_difference_mean": equalized_odds_difference(Y_TRUE, Y_PRED, agg="mean", **kw),
        "equalized_odds_ratio": equalized_odds_ratio(Y_TRUE, Y_PRED, **kw),
        "equalized_odds_ratio_mean": equalized_odds_ratio(Y_TRUE, Y_PRED, agg="mean", **kw),
        "equal_opportunity_difference": equal_opportunity_difference(Y_TRUE, Y_PRED, **kw),
        "equal_opportunity_ratio": equal_opportunity_ratio(Y_TRUE, Y_PRED, **kw),
    }
    block = grouping(report, "group")["fairlearn"][method]
    for metric, value in expected.items():
        assert block[metric] == pytest.approx(value, abs=1e-12), metric


def test_own_gaps_agree_with_fairlearn_when_every_group_is_ok(report: dict) -> None:
    gaps = grouping(report, "group")["gaps"]
    for metric in (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equal_opportunity_difference",
        "equal_opportunity_ratio",
    ):
        assert gaps[metric]["status"] == "ok"
        assert gaps[metric]["value"] == pytest.approx(TABLE[metric][0], abs=5e-7)
    # The FPR of group b is 0, so Fairlearn's equalized-odds ratio is 0/1 = 0: defined, and equal.
    assert gaps["equalized_odds_ratio"]["value"] == pytest.approx(0.0)
    assert gaps["eopp1"]["value"] == pytest.approx(0.2)
