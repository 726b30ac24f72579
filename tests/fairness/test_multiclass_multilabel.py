"""Multi-label reports (a binary report per finding), bad input of both tasks, the typed schema, the
flat rows, and paired comparisons of multi-class and multi-label models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from class_synth import simulate_classes, simulate_findings
from pydantic import TypeAdapter

from app.fairness.engine import PredictionSet, build_report, compare_models, metric_rows
from app.fairness.report_schema import MulticlassReport, MultilabelReport, PairComparison

ATTRIBUTES = ["sex", "skin_type"]


def round_trips(schema: object, document: dict) -> bool:
    """The typed JSON of ``document`` has the same keys, in the same order, and the same values."""
    adapter = TypeAdapter(schema)
    stored = json.loads(json.dumps(document, allow_nan=False))
    return json.dumps(json.loads(adapter.dump_json(adapter.validate_python(stored)))) == json.dumps(stored)


def test_each_finding_is_the_binary_report_of_its_known_rows() -> None:
    p = simulate_findings(800, 1, findings=3, unknown=0.2)
    report = build_report(p, attributes=["sex"], n_boot=30, seed=3)
    for f, name in enumerate(p.findings):
        known = p.y_true[:, f] >= 0
        alone = PredictionSet(
            y_true=p.y_true[known, f],
            exit_scores=p.exit_scores[known, :, f],
            groups={"sex": np.asarray(p.groups["sex"])[known]},
            threshold=0.5,
            sample_ids=p.sample_ids[known],
        )
        assert json.dumps(report["per_finding"][name]) == json.dumps(
            build_report(alone, attributes=["sex"], n_boot=30, seed=3)
        )
        counts = report["population"]["per_finding"][name]
        assert counts == {
            "n": int(known.sum()),
            "n_pos": int((p.y_true[:, f] == 1).sum()),
            "n_neg": int((p.y_true[:, f] == 0).sum()),
            "n_unknown": int((~known).sum()),
        }
    assert [row["finding"] for row in report["summary"]] == list(p.findings)
    assert set(report["summary"][0]["gaps"]) == {"pfd", "eopp1", "eopp0", "eodd"}
    assert round_trips(MultilabelReport, report)


def test_multiclass_report_round_trips_through_its_schema_with_exits_and_clusters() -> None:
    p = simulate_classes(900, 2, k=3, n_exits=2, missing=0.05, clusters=300)
    report = build_report(p, attributes=ATTRIBUTES, n_boot=20)
    assert 250 < report["config"]["n_clusters"] <= 300
    assert round_trips(MulticlassReport, report)
    assert round_trips(MulticlassReport, build_report(p, attributes=[], n_boot=0))


BAD_MULTICLASS = {
    "label outside the declared classes": (
        lambda p: dataclasses.replace(p, y_true=np.where(np.arange(len(p.y_true)) == 7, 3, p.y_true)),
        r"y_true row 7: 3 is not a class index in 0\.\.2",
    ),
    "one class": (
        lambda p: dataclasses.replace(
            p, exit_probs=np.ones((len(p.y_true), 1, 1)), classes=("only",), y_true=p.y_true * 0
        ),
        r"at least 2 classes, got 1",
    ),
    "scores that do not sum to 1": (
        lambda p: dataclasses.replace(
            p, exit_probs=np.where(np.arange(len(p.y_true))[:, None, None] == 5, 0.2, p.exit_probs)
        ),
        r"exit_probs row 5 \(exit 0\) sums to 0\.6, not 1",
    ),
    "NaN": (
        lambda p: dataclasses.replace(
            p, exit_probs=np.where(np.arange(len(p.y_true))[:, None, None] == 9, np.nan, p.exit_probs)
        ),
        r"exit_probs row 9 \(exit 0\): not a finite number",
    ),
    "float labels": (lambda p: dataclasses.replace(p, y_true=p.y_true.astype(float)), r"integer class indices"),
    "non-positive class threshold": (
        lambda p: dataclasses.replace(p, class_thresholds=np.array([1.0, 0.0, 1.0])),
        r"class threshold of 'class_1'",
    ),
}


@pytest.mark.parametrize("case", BAD_MULTICLASS.values(), ids=BAD_MULTICLASS.keys())
def test_bad_multiclass_input_is_refused_naming_the_row(case) -> None:
    p = simulate_classes(60, 1, k=3)
    with pytest.raises(ValueError, match=case[1]):
        build_report(case[0](p), attributes=["sex"], n_boot=0)


def test_bad_multilabel_input_is_refused_naming_the_row_or_finding() -> None:
    p = simulate_findings(50, 1, findings=2, unknown=0.0)
    y = p.y_true.copy()
    y[4] = -1
    with pytest.raises(ValueError, match=r"y_true row 4: every finding is missing"):
        build_report(dataclasses.replace(p, y_true=y), attributes=["sex"], n_boot=0)
    y = p.y_true.copy()
    y[3, 1] = 2
    with pytest.raises(ValueError, match=r"y_true row 3, finding 'finding_1': 2 is not 1, 0 or -1"):
        build_report(dataclasses.replace(p, y_true=y), attributes=["sex"], n_boot=0)
    scores = p.exit_scores.copy()
    scores[2, 0, 1] = 1.5
    with pytest.raises(ValueError, match=r"finding 'finding_1': exit_scores must be probabilities"):
        build_report(dataclasses.replace(p, exit_scores=scores), attributes=["sex"], n_boot=0)


def test_rows_name_the_class_in_the_metric() -> None:
    p = simulate_classes(500, 3, k=3, n_exits=2)
    report = build_report(p, attributes=["sex"], n_boot=10)
    rows = list(metric_rows(report))
    keys = {"attribute", "group", "exit", "metric", "value", "ci_low", "ci_high", "status", "n"}
    assert all(set(r) == keys for r in rows) and all(isinstance(r["exit"], str) for r in rows)
    by_key = {(r["attribute"], r["group"], r["exit"], r["metric"]): r for r in rows}
    group = report["evaluations"][-1]["groupings"][1]["groups"][0]
    row = by_key[("sex", group["group"], "policy", "tpr[class_1]")]
    assert row["value"] == group["per_class"]["class_1"]["tpr"]["value"]
    assert by_key[("sex", group["group"], "policy", "n[class_1]")]["value"] == group["per_class"]["class_1"]["n_pos"]
    gap = report["evaluations"][-1]["groupings"][1]["gaps"]["eopp1"]
    assert by_key[("sex", "*", "policy", "eopp1")]["value"] == gap["value"]
    assert by_key[("sex", "*", "policy", "eopp1.paper")]["value"] == gap["paper_value"]
    assert ("sex", "*", "policy", "eodd[class_2]") in by_key and ("sex", "*", "policy", "avg.macro_f1") in by_key
    assert {r["exit"] for r in rows} == {"0", "1", "policy"}
    assert any(r["metric"] == "exit_rate" for r in rows)
    labelled = list(metric_rows(build_report(simulate_findings(300, 1), attributes=["sex"], n_boot=0)))
    assert {r["metric"] for r in labelled} >= {"tpr[finding_0]", "pfd[finding_2]"}


def test_multiclass_comparison_pairs_models_on_the_same_resamples() -> None:
    biased = simulate_classes(1500, 1, k=3, skin_shift=1.2)
    fair = simulate_classes(1500, 1, k=3, skin_shift=0.0)
    result = compare_models({"biased": biased, "fair": fair, "same": biased}, attributes=ATTRIBUTES, n_boot=60)
    fair_vs, same_vs = result["comparisons"]
    rows = {(r["attribute"], r["metric"]): r for r in fair_vs["differences"]}
    assert set(m for a, m in rows if a == "overall") == {"accuracy", "macro_f1", "balanced_accuracy"}
    skin = rows[("skin_type", "class_mean_eopp1")]
    assert skin["difference"] < 0 and skin["ci_high"] < 0 and skin["verdict"] == "better"
    assert rows[("skin_type", "macro_f1_diff")]["difference"] < 0
    assert next(v for v in fair_vs["verdicts"] if v["attribute"] == "skin_type")["verdict"] == "better"
    assert all(r["difference"] == 0 for r in same_vs["differences"] if r["difference"] is not None)
    assert all(v["verdict"] == "not distinguishable from noise" for v in same_vs["verdicts"])
    assert fair_vs["compute"]["difference"] == 0
    assert all(round_trips(PairComparison, c) for c in result["comparisons"])


def test_multilabel_comparison_and_mixed_tasks() -> None:
    a = simulate_findings(600, 1, findings=2)
    b = dataclasses.replace(a, exit_scores=np.clip(a.exit_scores * 0.8 + 0.1, 0, 1))
    result = compare_models({"a": a, "b": b}, attributes=["sex"], n_boot=30)
    metrics = {r["metric"] for r in result["comparisons"][0]["differences"]}
    assert {"finding:finding_0:auc", "finding:finding_1:eopp1"} <= metrics
    assert result["n_matched"] == 600
    assert round_trips(PairComparison, result["comparisons"][0])
    with pytest.raises(ValueError, match="must share a task"):
        compare_models({"a": a, "c": simulate_classes(600, 1)}, attributes=["sex"], n_boot=0)
    other = simulate_classes(600, 1)
    with pytest.raises(ValueError, match="has classes"):
        compare_models({"a": other, "b": dataclasses.replace(other, classes=("x", "y", "z"))}, attributes=["sex"])
