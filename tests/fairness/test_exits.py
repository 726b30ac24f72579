"""Multi-exit models: one evaluation per exit plus the policy; exit rates and mean compute."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synth import group, grouping, simulate

from app.fairness.engine import PredictionSet, build_report


@pytest.fixture(scope="module")
def predictions() -> PredictionSet:
    return simulate(2000, 8, n_exits=3)


@pytest.fixture(scope="module")
def report(predictions: PredictionSet) -> dict:
    return build_report(predictions, attributes=["sex", "age_group"], n_boot=50)


def test_every_exit_and_the_policy_are_evaluated(report: dict) -> None:
    assert [e["exit"] for e in report["evaluations"]] == [0, 1, 2, "policy"]
    assert "curves" in grouping(report, "sex", "policy")
    assert "curves" not in grouping(report, "sex", 0)


def test_policy_metrics_are_those_of_the_served_scores(predictions: PredictionSet, report: dict) -> None:
    served = PredictionSet(
        y_true=predictions.y_true,
        exit_scores=predictions.policy_scores[:, None],
        groups=predictions.groups,
        threshold=predictions.threshold,
    )
    single = build_report(served, attributes=["sex", "age_group"], n_boot=0)
    for label in ("F", "M"):
        ours = group(report, "sex", label)["metrics"]
        theirs = group(single, "sex", label)["metrics"]
        for metric in ("auc", "pf", "tpr", "fpr", "ece"):
            assert ours[metric]["value"] == pytest.approx(theirs[metric]["value"], abs=1e-12)


@pytest.mark.parametrize("exit_", [0, 1, 2])
def test_each_exit_is_evaluated_as_if_it_were_alone(predictions: PredictionSet, report: dict, exit_: int) -> None:
    """The exits share resamples and a packed weight block; an exit's evaluation (values, intervals,
    gaps, tests) must be exactly the one a report of that exit beside the same policy gives (the
    same design order, so the same resamples): nothing leaks between columns."""
    pair = PredictionSet(
        y_true=predictions.y_true,
        exit_scores=np.stack([predictions.exit_scores[:, exit_], predictions.policy_scores], axis=1),
        groups=predictions.groups,
        threshold=predictions.threshold,
    )
    alone = build_report(pair, attributes=["sex", "age_group"], n_boot=50)
    evaluation = next(e for e in report["evaluations"] if e["exit"] == exit_)
    assert alone["evaluations"][0]["groupings"] == evaluation["groupings"]
    assert alone["evaluations"][-1]["groupings"] == report["evaluations"][-1]["groupings"]


def test_exit_rates_and_mean_compute(predictions: PredictionSet, report: dict) -> None:
    exits = report["exits"]
    assert exits["n_exits"] == 3
    sex = predictions.groups["sex"]
    entry = next(g for g in exits["groupings"] if g["attribute"] == "sex")
    for g in entry["groups"]:
        m = sex == g["group"]
        taken = np.bincount(predictions.exit_index[m], minlength=3) / m.sum()
        np.testing.assert_allclose([r["value"] for r in g["exit_rates"]], taken)
        assert g["mean_compute"]["value"] == pytest.approx(predictions.exit_cost[predictions.exit_index[m]].mean())
        assert g["mean_compute"]["ci_low"] < g["mean_compute"]["value"] < g["mean_compute"]["ci_high"]
        for rate in g["exit_rates"]:
            assert rate["ci_low"] <= rate["value"] <= rate["ci_high"]


def test_without_an_exit_policy_the_policy_is_the_final_head(predictions: PredictionSet) -> None:
    report = build_report(replace(predictions, exit_index=None), attributes=["sex"], n_boot=0)
    assert report["exits"] is None
    last, policy = grouping(report, "sex", 2), grouping(report, "sex", "policy")
    assert last["groups"] == policy["groups"]
