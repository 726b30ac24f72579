"""The policy language: each check passes, fails or is insufficient on crafted reports and
comparisons; bad policies are refused naming the field."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import TypeAdapter, ValidationError
from synth import simulate

from app.fairness.engine.compare import COMPARED_GAPS, OVERALL_METRICS
from app.fairness.engine.report import build_report
from app.fairness.policy import (
    GAP_NAMES,
    GROUP_METRIC_NAMES,
    Check,
    ComparedMetric,
    Policy,
    evaluate_check,
    evaluate_policy,
    missing_attributes,
)
from app.fairness.report_schema import Gaps, GroupMetrics

CHECK = TypeAdapter(Check)


def value(v: float | None, low: float | None = None, high: float | None = None, status: str = "ok", n: int = 100):
    return {"value": v, "ci_low": low, "ci_high": high, "status": status, "n": n}


def group(name: str, n_pos: int, n_neg: int, **metrics: dict[str, Any]) -> dict[str, Any]:
    base = {m: value(0.5) for m in GroupMetrics.__annotations__}
    base["tpr"] = value(0.8, n=n_pos)
    base["fpr"] = value(0.1, n=n_neg)
    return {"group": name, "levels": {}, "n": n_pos + n_neg, "n_pos": n_pos, "n_neg": n_neg, "metrics": base | metrics}


def overall_group(auc: float) -> dict[str, Any]:
    return group("all", 100, 350, auc=value(auc, auc - 0.03, auc + 0.03))


def report(*, pfd: dict[str, Any] | None = None, skin: list[dict[str, Any]] | None = None, auc: float = 0.85):
    gaps = {
        g: value(0.01, 0.0, 0.02) | {"p_value": 0.5, "groups_used": [], "left_out": []} for g in Gaps.__annotations__
    }
    if pfd is not None:
        gaps["pfd"] = {**gaps["pfd"], **pfd}
    skin_groups = skin or [group("I-III", 60, 200), group("IV-VI", 40, 150)]
    groupings = [
        {
            "attribute": "overall",
            "kind": "overall",
            "n_missing": 0,
            "groups": [overall_group(auc)],
        },
        {"attribute": "skin", "kind": "attribute", "n_missing": 0, "groups": skin_groups, "gaps": gaps},
    ]
    return {"evaluations": [{"exit": 0, "groupings": []}, {"exit": "policy", "groupings": groupings}]}


def comparison(**differences: tuple[float | None, float | None]) -> dict[str, Any]:
    """``metric=(difference, p_value)``; overall metrics on "overall", gaps on "skin"."""
    rows = []
    for metric, (diff, p) in differences.items():
        attribute = "overall" if metric in OVERALL_METRICS else "skin"
        low = None if diff is None else diff - 0.02
        high = None if diff is None else diff + 0.02
        rows.append(
            {"attribute": attribute, "metric": metric, "difference": diff, "ci_low": low, "ci_high": high, "p_value": p}
        )
    return {"model": "candidate", "reference": "incumbent", "differences": rows}


def check(**fields: Any) -> Any:
    return CHECK.validate_python(fields)


def test_policy_metric_names_are_the_reports_and_the_comparisons() -> None:
    assert set(Gaps.__annotations__) == GAP_NAMES
    assert set(GroupMetrics.__annotations__) == GROUP_METRIC_NAMES
    assert set(get_args(ComparedMetric)) == {*OVERALL_METRICS, *COMPARED_GAPS}


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"metric": "pfd", "attribute": "skin", "max": 0.05}, "pass"),
        ({"metric": "pfd", "attribute": "skin", "max": 0.005}, "fail"),
        ({"metric": "pfd", "attribute": "skin", "max": 0.015, "on": "ci_high"}, "fail"),
        ({"metric": "pfd", "attribute": "skin", "max": 0.025, "on": "ci_high"}, "pass"),
        ({"metric": "auc", "min": 0.8}, "pass"),
        ({"metric": "auc", "min": 0.9}, "fail"),
        ({"metric": "auc", "min": 0.8, "max": 0.84}, "fail"),
        ({"metric": "eodd", "attribute": "sex", "max": 0.1}, "insufficient"),
    ],
)
def test_limit(fields: dict[str, Any], outcome: str) -> None:
    result = evaluate_check(check(check="limit", **fields), report())
    assert result.outcome == outcome, result.message
    if outcome != "insufficient":
        assert result.value is not None and result.ci_low is not None and result.ci_high is not None


def test_limit_on_an_undefined_or_small_gap_is_insufficient_never_pass() -> None:
    limit = check(check="limit", metric="pfd", attribute="skin", max=0.05)
    for pfd in ({"status": "insufficient"}, {"status": "undefined", "value": None}):
        result = evaluate_check(limit, report(pfd=pfd))
        assert result.outcome == "insufficient"
    wide = check(check="limit", metric="pfd", attribute="skin", max=0.05, on="ci_high")
    assert evaluate_check(wide, report(pfd={"ci_high": None})).outcome == "insufficient"


def test_failed_limit_carries_value_interval_and_p_value() -> None:
    failing = report(pfd={"value": 0.3, "ci_low": 0.2, "ci_high": 0.4, "p_value": 1e-6})
    result = evaluate_check(check(check="limit", metric="pfd", attribute="skin", max=0.05), failing)
    assert (result.outcome, result.value, result.ci_low, result.ci_high, result.p_value) == (
        "fail",
        0.3,
        0.2,
        0.4,
        1e-6,
    )
    assert "pfd over skin = 0.3 breaks ≤ 0.05" in result.message


def test_min_group_count() -> None:
    c = check(check="min_group_count", attribute="skin", min_positives=30, min_negatives=100)
    assert evaluate_check(c, report()).outcome == "pass"
    small = report(skin=[group("I-III", 60, 200), group("VI", 12, 150)])
    result = evaluate_check(c, small)
    assert result.outcome == "insufficient"
    assert "VI (12 positives, 150 negatives)" in result.message
    assert evaluate_check(check(check="min_group_count", attribute="sex", min_positives=1), report()).outcome == (
        "insufficient"
    )


def test_group_band() -> None:
    skin = [
        group("I", 50, 200, fpr=value(0.06, n=200)),
        group("V", 50, 120, fpr=value(0.38, n=120)),
        group("VI", 5, 8, fpr=value(1.0, n=8)),
    ]
    band = check(check="group_band", attribute="skin", metric="fpr", high=0.2, min_n=20)
    result = evaluate_check(band, report(skin=skin))
    assert result.outcome == "fail"
    assert "V fpr 0.38 outside" in result.message and "left out: VI (n 8, ok)" in result.message
    spread = check(check="group_band", attribute="skin", metric="fpr", max_spread=0.5, min_n=20)
    assert evaluate_check(spread, report(skin=skin)).outcome == "pass"  # VI is too small to be judged
    counting_all = check(check="group_band", attribute="skin", metric="fpr", max_spread=0.5)
    spread_too_wide = evaluate_check(counting_all, report(skin=skin))
    assert spread_too_wide.outcome == "fail" and "spread 0.94 > 0.5 (I 0.06 to VI 1)" in spread_too_wide.message
    only_one = check(
        check="group_band", attribute="skin", metric="fpr", max_spread=0.5, min_n=150
    )  # only I is large enough
    assert evaluate_check(only_one, report(skin=skin)).outcome == "insufficient"


def test_no_worsening() -> None:
    c = check(check="no_worsening", metrics=["auc", "pfd", "eopp0"], attribute="skin", alpha=0.05)
    assert evaluate_check(c, report()).outcome == "insufficient"  # no comparison
    fine = comparison(auc=(0.01, 0.3), pfd=(-0.02, 0.01), eopp0=(0.001, 0.9))
    assert evaluate_check(c, report(), fine).outcome == "pass"  # pfd fell significantly: better
    worse = comparison(auc=(-0.04, 0.001), pfd=(0.05, 0.002), eopp0=(0.001, 0.9))
    result = evaluate_check(c, report(), worse)
    assert result.outcome == "fail"
    assert "auc (overall)" in result.message and "pfd (skin)" in result.message
    assert result.p_value == pytest.approx(0.003)  # Holm over the three metrics: 0.001 × 3
    not_significant = comparison(auc=(-0.04, 0.02), pfd=(0.05, 0.02), eopp0=(0.001, 0.9))
    assert evaluate_check(c, report(), not_significant).outcome == "pass"  # 0.02 × 3 ≥ 0.05
    undefined = comparison(auc=(None, None), pfd=(0.0, 0.5), eopp0=(0.0, 0.5))
    assert evaluate_check(c, report(), undefined).outcome == "insufficient"


def test_max_drop() -> None:
    c = check(check="max_drop", metric="auc", max_drop=0.02)
    assert evaluate_check(c, report(), comparison(auc=(-0.01, 0.2))).outcome == "pass"
    result = evaluate_check(c, report(), comparison(auc=(-0.05, 0.001)))
    assert (result.outcome, result.value, result.ci_low, result.ci_high) == (
        "fail",
        0.05,
        pytest.approx(0.03),
        pytest.approx(0.07),
    )
    assert evaluate_check(c, report()).outcome == "insufficient"
    upper = check(check="max_drop", metric="auc", max_drop=0.02, on="ci_high")
    assert evaluate_check(upper, report(), comparison(auc=(-0.01, 0.2))).outcome == "fail"  # drop up to 0.03
    assert evaluate_check(upper, report(), comparison(auc=(0.01, 0.2))).outcome == "pass"


def test_comparing_checks_need_enough_shared_samples() -> None:
    few = comparison(auc=(0.01, 0.5)) | {"n_matched": 21}
    for c in (
        check(check="max_drop", metric="auc", max_drop=0.02),
        check(check="no_worsening", metrics=["auc"], min_matched=50),
    ):
        result = evaluate_check(c, report(), few)
        assert result.outcome == "insufficient" and "only 21 samples" in result.message
        assert evaluate_check(c, report(), few | {"n_matched": 500}).outcome == "pass"


def test_policy_wide_group_minimum_adds_a_check_per_attribute() -> None:
    policy = Policy.model_validate(
        {"attributes": ["skin"], "checks": [{"check": "limit", "metric": "auc", "min": 0.5}], "min_group_positives": 50}
    )
    outcomes = [r.outcome for r in evaluate_policy(policy, report())]
    assert outcomes == ["pass", "insufficient"]  # IV-VI has 40 positives


def test_checks_on_a_real_report() -> None:
    predictions = simulate(2000, 1, group_shift=1.2)
    real = build_report(predictions, attributes=["skin_type"], intersections=False, n_boot=50, seed=0, min_count=10)
    policy = Policy.model_validate(
        {
            "attributes": ["skin_type"],
            "checks": [
                {"check": "limit", "metric": "pfd", "attribute": "skin_type", "max": 0.5},
                {"check": "limit", "metric": "auc", "min": 0.5},
                {"check": "group_band", "attribute": "skin_type", "metric": "tpr", "max_spread": 1.0, "min_n": 10},
                {"check": "min_group_count", "attribute": "skin_type", "min_positives": 10, "min_negatives": 10},
            ],
        }
    )
    assert [r.outcome for r in evaluate_policy(policy, real)] == ["pass"] * 4
    strict = Policy.model_validate(
        {
            "attributes": ["skin_type"],
            "checks": [{"check": "limit", "metric": "pfd", "attribute": "skin_type", "max": 0.0001}],
        }
    )
    (result,) = evaluate_policy(strict, real)
    assert result.outcome == "fail" and result.ci_high is not None and result.p_value is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"attributes": ["skin"], "checks": []}, "checks"),
        (
            {"attributes": ["skin"], "checks": [{"check": "limit", "metric": "pfdd", "attribute": "skin", "max": 1}]},
            "checks.0.limit.metric",
        ),
        (
            {
                "attributes": ["skin"],
                "checks": [{"check": "limit", "metric": "pfd", "attribute": "skin", "min": 0.2, "max": 0.1}],
            },
            "checks.0.limit",
        ),
        (
            {
                "attributes": ["skin"],
                "checks": [{"check": "group_band", "attribute": "skin", "metric": "fpr", "low": 0.5, "high": 0.1}],
            },
            "checks.0.group_band",
        ),
        (
            {"attributes": ["skin"], "checks": [{"check": "limit", "metric": "pfd", "attribute": "sex", "max": 0.1}]},
            "checks",
        ),
        ({"attributes": ["skin"], "checks": [{"check": "limit", "metric": "pfd", "max": 0.1}]}, "checks.0.limit"),
        ({"attributes": ["skin"], "checks": [{"check": "no_worsening", "metrics": ["pfd"]}]}, "checks.0.no_worsening"),
        ({"attributes": ["skin"], "checks": [{"check": "frobnicate"}]}, "checks.0"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Policy.model_validate(body)
    locations = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert field in locations


def test_attributes_missing_from_the_cohort_are_named() -> None:
    policy = Policy.model_validate(
        {"attributes": ["skin", "sex"], "checks": [{"check": "limit", "metric": "auc", "min": 0.5}]}
    )
    assert [e["field"] for e in missing_attributes(policy, ["skin", "age"])] == ["attributes.1"]
    assert missing_attributes(policy, ["sex", "skin"]) == []
