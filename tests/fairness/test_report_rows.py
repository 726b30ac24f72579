"""The report's shape, and the flat rows stored in the database."""

from __future__ import annotations

import json

import pytest
from synth import simulate

from app.fairness.engine import METRIC_DEFINITION_VERSION, build_report, metric_rows

STATUSES = {"ok", "undefined", "insufficient"}


@pytest.fixture(scope="module")
def report() -> dict:
    return build_report(simulate(1500, 9, missing=0.05, n_exits=2), attributes=["sex", "age_group"], n_boot=40)


def test_report_header(report: dict) -> None:
    assert report["metric_definition_version"] == METRIC_DEFINITION_VERSION
    assert report["config"]["n_boot"] == 40 and report["config"]["confidence"] == 0.95
    assert [g["attribute"] for g in report["groupings"]] == ["overall", "sex", "age_group", "sex×age_group"]
    assert report["groupings"][2]["n_missing"] > 0
    assert report["summary"]["verdict"]
    json.dumps(report, allow_nan=False)


def test_rows_are_flat_typed_and_complete(report: dict) -> None:
    rows = list(metric_rows(report))
    keys = {"attribute", "group", "exit", "metric", "value", "ci_low", "ci_high", "status", "n"}
    assert all(set(r) == keys for r in rows)
    assert all(isinstance(r["exit"], str) for r in rows)
    assert {r["exit"] for r in rows} == {"0", "1", "policy"}
    assert all(r["status"] in STATUSES for r in rows)
    assert all(r["value"] is None or isinstance(r["value"], float) for r in rows)
    assert all(len(r["metric"]) <= 64 for r in rows)
    for r in rows:
        if r["status"] == "undefined":
            assert r["value"] is None
    # one row per group × metric per evaluation, plus gaps marked "*"
    auc = [r for r in rows if r["metric"] == "auc" and r["exit"] == "policy"]
    assert len(auc) == sum(len(g["groups"]) for g in report["groupings"])
    gaps = [r for r in rows if r["group"] == "*" and r["metric"] == "pfd" and r["exit"] == "policy"]
    assert {r["attribute"] for r in gaps} == {"sex", "age_group", "sex×age_group"}
    assert any(r["metric"] == "exit_rate" for r in rows)
    assert any(r["metric"] == "mean_compute" for r in rows)
    assert any(r["metric"] == "fairlearn.equalized_odds_difference.between_groups" for r in rows)
