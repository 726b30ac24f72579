"""The typed report and comparison (``app.fairness.report_schema``) describe exactly what the engine
builds: every report shape round-trips to the same JSON, nothing dropped, nothing added, no key that
the engine leaves out sent as null."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from synth import simulate

from app.fairness.engine.compare import compare_models
from app.fairness.engine.report import build_report
from app.fairness.report_schema import Comparison, FairnessReport

ATTRIBUTES = ["sex", "skin_type", "age_group"]
REPORT, COMPARISON = TypeAdapter(FairnessReport), TypeAdapter(Comparison)


def stored(document: dict) -> dict:
    """As the database gives it back: JSON."""
    return json.loads(json.dumps(document))


def same_json(adapter: TypeAdapter, document: dict) -> bool:
    """The typed JSON of ``document`` has the same keys, in the same order, and the same values."""
    return json.dumps(json.loads(adapter.dump_json(adapter.validate_python(document)))) == json.dumps(document)


CASES = {
    "single exit": dict(n=2000, attributes=ATTRIBUTES, n_exits=1, n_boot=30),
    "multi-exit with exit index and costs": dict(n=2000, attributes=ATTRIBUTES, n_exits=3, n_boot=30),
    "no bootstrap (null intervals)": dict(n=800, attributes=["sex"], n_exits=1, n_boot=0),
    "small groups (insufficient, undefined)": dict(n=40, attributes=["skin_type"], n_exits=1, n_boot=20),
    "no attribute (overall only)": dict(n=300, attributes=[], n_exits=1, n_boot=10),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_report_shape_round_trips_unchanged(case):
    predictions = simulate(case["n"], 3, n_exits=case["n_exits"], group_shift=0.8, missing=0.05)
    report = stored(
        build_report(
            predictions, attributes=case["attributes"], intersections=len(case["attributes"]) > 1, n_boot=case["n_boot"]
        )
    )
    assert same_json(REPORT, report)


def test_keys_the_engine_leaves_out_stay_out():
    report = stored(build_report(simulate(500, 1), attributes=["sex"], n_boot=0))
    dumped = REPORT.dump_python(REPORT.validate_python(report), mode="json")
    overall = dumped["evaluations"][-1]["groupings"][0]
    assert overall["kind"] == "overall" and "gaps" not in overall and "tests" not in overall
    assert "threshold_source" not in dumped["config"] and dumped["exits"] is None  # null, as the engine says
    report["config"]["threshold_source"] = "given"  # what an audit records
    assert REPORT.validate_python(report)["config"]["threshold_source"] == "given"


def test_a_report_that_drifted_from_the_schema_is_refused():
    report = stored(build_report(simulate(500, 1), attributes=["sex"], n_boot=0))
    report["evaluations"][0]["groupings"][1]["groups"][0]["metrics"]["auc"]["status"] = "fine"
    with pytest.raises(ValidationError, match="status"):
        REPORT.validate_python(report)


def test_the_comparison_round_trips_unchanged():
    base = simulate(1500, 5)
    other = dataclasses.replace(base, exit_scores=np.clip(base.exit_scores * 0.9 + 0.05, 0, 1))
    result = compare_models({"evl_a": base, "evl_b": other}, attributes=["sex", "skin_type"], n_boot=30)
    evaluations = [
        {"id": name, "name": name, "model_version_id": None, "cohort_id": None, "split": None}
        for name in ("evl_a", "evl_b")
    ]
    comparison = stored({"evaluations": evaluations, **result})
    assert same_json(COMPARISON, comparison)


def test_a_pooled_out_of_fold_report_round_trips_unchanged():
    """Clusters and fold labels add n_clusters, folds and a fold spread beside the headline values."""
    base = simulate(1200, 4, group_shift=0.8)
    rng = np.random.default_rng(9)
    pooled = dataclasses.replace(
        base,
        clusters=rng.integers(0, 400, 1200).astype(str),
        folds=np.array([f"s{s}/f{f}" for s, f in zip(rng.integers(0, 2, 1200), rng.integers(0, 3, 1200), strict=True)]),
    )
    report = stored(build_report(pooled, attributes=["sex", "skin_type"], n_boot=20, min_count=20))
    assert report["config"]["n_clusters"] == len(set(pooled.clusters)) and len(report["config"]["folds"]) == 6
    assert "folds" in report["evaluations"][-1]["groupings"][1]["gaps"]["pfd"]
    assert same_json(REPORT, report)
    other = dataclasses.replace(pooled, exit_scores=np.clip(pooled.exit_scores * 0.9 + 0.05, 0, 1))
    result = compare_models({"a": pooled, "b": other}, attributes=["sex"], n_boot=20)
    evaluations = [{"id": n, "name": n, "model_version_id": None, "cohort_id": None, "split": None} for n in "ab"]
    assert same_json(COMPARISON, stored({"evaluations": evaluations, **result}))
