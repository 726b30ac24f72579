"""Policy checks on multiclass and multilabel reports built by the engine: multiclass gaps and overall
metrics pass or fail, a metric of another task is insufficient and says so, and a multilabel check
judges one finding or the worst of all."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from class_synth import simulate_classes, simulate_findings
from pydantic import TypeAdapter
from synth import simulate

from app.fairness.engine.compare import compare_models
from app.fairness.engine.report import build_report
from app.fairness.policy import (
    MULTICLASS_GAP_NAMES,
    MULTICLASS_GROUP_METRIC_NAMES,
    Check,
    Policy,
    evaluate_check,
    evaluate_policy,
    report_attributes,
)
from app.fairness.report_schema import MulticlassGaps, MulticlassGroupMetrics

CHECK = TypeAdapter(Check)


@pytest.fixture(scope="module")
def multiclass_report() -> dict:
    predictions = simulate_classes(900, seed=3, k=3, skin_shift=1.4)
    return build_report(predictions, attributes=["sex", "skin_type"], n_boot=50, seed=0, min_count=10)


@pytest.fixture(scope="module")
def multilabel_report() -> dict:
    return build_report(simulate_findings(400, seed=1), attributes=["sex"], n_boot=50, seed=0, min_count=10)


def judge(raw: dict, report: dict):
    return evaluate_check(CHECK.validate_python(raw), report)


def test_multiclass_metric_names_are_the_reports():
    assert set(MulticlassGaps.__annotations__) == MULTICLASS_GAP_NAMES
    assert set(MulticlassGroupMetrics.__annotations__) == MULTICLASS_GROUP_METRIC_NAMES


def test_a_multiclass_gap_check_fails_on_the_planted_gap_and_passes_a_loose_bound(multiclass_report):
    eopp1 = {"check": "limit", "metric": "eopp1", "attribute": "skin_type"}
    tight = judge({**eopp1, "max": 0.02}, multiclass_report)
    assert tight.outcome == "fail" and tight.value is not None and tight.value > 0.02
    assert "eopp1 over skin_type" in tight.message
    assert judge({**eopp1, "max": 0.99}, multiclass_report).outcome == "pass"
    f1 = judge({"check": "limit", "metric": "macro_f1_diff", "attribute": "skin_type", "max": 0.01}, multiclass_report)
    assert f1.outcome == "fail"
    overall = judge({"check": "limit", "metric": "macro_f1", "min": 0.3}, multiclass_report)
    assert overall.outcome == "pass" and overall.value is not None and 0.3 < overall.value <= 1
    band = judge(
        {"check": "group_band", "attribute": "skin_type", "metric": "accuracy", "max_spread": 0.01}, multiclass_report
    )
    assert band.outcome == "fail" and "VI" in band.message


def test_a_metric_of_another_task_is_insufficient_and_named(multiclass_report):
    pfd = judge({"check": "limit", "metric": "pfd", "attribute": "skin_type", "max": 0.1}, multiclass_report)
    assert pfd.outcome == "insufficient" and pfd.message == "pfd is not a metric of a multiclass report"
    binary = build_report(simulate(400, seed=0), attributes=["sex"], n_boot=0)
    f1 = judge({"check": "limit", "metric": "macro_f1_diff", "attribute": "sex", "max": 0.1}, binary)
    assert f1.outcome == "insufficient" and f1.message == "macro_f1_diff is not a metric of a binary report"
    named = judge({"check": "limit", "metric": "pfd", "attribute": "sex", "max": 1, "finding": "edema"}, binary)
    assert named.outcome == "insufficient" and "finding 'edema'" in named.message and "binary" in named.message


def test_min_group_count_on_a_multiclass_report_counts_every_class(multiclass_report):
    short = judge({"check": "min_group_count", "attribute": "sex", "min_positives": 10_000}, multiclass_report)
    assert short.outcome == "insufficient" and "of every class" in short.message and "class class_2" in short.message
    assert judge({"check": "min_group_count", "attribute": "sex", "min_positives": 20}, multiclass_report).outcome == (
        "pass"
    )


def test_multilabel_checks_judge_one_finding_or_the_worst(multilabel_report):
    limit = {"check": "limit", "metric": "pfd", "attribute": "sex"}
    every = judge({**limit, "max": 0.0}, multilabel_report)
    assert every.outcome == "fail" and every.message.startswith("finding finding_0: ")
    assert every.message.endswith("(the worst of 3 findings)")
    one = judge({**limit, "max": 1.0, "finding": "finding_2"}, multilabel_report)
    assert one.outcome == "pass" and one.message.startswith("finding finding_2: ") and "worst" not in one.message
    gone = judge({**limit, "max": 1.0, "finding": "nodule"}, multilabel_report)
    assert gone.outcome == "insufficient" and "no finding 'nodule'" in gone.message
    policy = Policy.model_validate(
        {"attributes": ["sex"], "checks": [{**limit, "max": 1.0}], "min_group_positives": 100_000}
    )
    outcomes = [r.outcome for r in evaluate_policy(policy, multilabel_report)]
    assert outcomes == ["pass", "insufficient"]


def test_comparing_checks_on_multiclass_and_multilabel_comparisons(multiclass_report, multilabel_report):
    fairer = simulate_classes(900, seed=3, k=3, skin_shift=0.0)
    biased = simulate_classes(900, seed=3, k=3, skin_shift=1.4)
    classes = compare_models({"old": fairer, "new": biased}, attributes=["skin_type"], n_boot=100, seed=0)
    pair = classes["comparisons"][0]
    metrics = ["accuracy", "class_mean_eopp1"]
    worsening = {"check": "no_worsening", "metrics": metrics, "attribute": "skin_type", "min_matched": 1}
    worse = evaluate_check(CHECK.validate_python(worsening), multiclass_report, pair)
    assert worse.outcome == "fail" and "accuracy (overall) -0.04" in worse.message
    assert "class_mean_eopp1" not in worse.message, "its interval spans 0: not significantly worse"
    binary_name = evaluate_check(CHECK.validate_python({**worsening, "metrics": ["pfd"]}), multiclass_report, pair)
    assert binary_name.outcome == "insufficient" and binary_name.message == "pfd: not compared for a multiclass model"
    drop = {"check": "max_drop", "metric": "accuracy", "max_drop": 0.0, "min_matched": 1}
    assert evaluate_check(CHECK.validate_python(drop), multiclass_report, pair).outcome == "fail"

    base = simulate_findings(400, seed=1)
    noisier = dataclasses.replace(base, exit_scores=np.clip(base.exit_scores + 0.3, 0, 1))
    findings = compare_models({"old": base, "new": noisier}, attributes=["sex"], n_boot=100, seed=0)
    auc = {"check": "max_drop", "metric": "auc", "max_drop": 0.5, "min_matched": 1}
    every = evaluate_check(CHECK.validate_python(auc), multilabel_report, findings["comparisons"][0])
    assert every.outcome == "pass" and every.message.startswith("finding:finding_")
    one = evaluate_check(
        CHECK.validate_python({**auc, "finding": "finding_1"}), multilabel_report, findings["comparisons"][0]
    )
    assert one.message.startswith("finding:finding_1:auc drop")


def test_report_attributes_of_every_task(multiclass_report, multilabel_report):
    assert report_attributes(multiclass_report)[:3] == ["overall", "sex", "skin_type"]
    assert report_attributes(multilabel_report) == ["overall", "sex"]
