"""The multi-label report: every finding is its own binary task (docs/metrics.md).

Each finding gets the whole binary report (``binary.build_binary_report`` on
``MultilabelPredictionSet.finding(i)``: the samples whose label of that finding is known), on the
same seed; a summary row per finding lists its verdict and the largest attribute gap of each
headline kind. Structure: ``app.fairness.report_schema.MultilabelReport``.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, SUMMARY_GAPS, build_binary_report
from app.fairness.engine.groups import Intersections
from app.fairness.engine.inputs import MultilabelPredictionSet


def validate_multilabel(predictions: MultilabelPredictionSet) -> np.ndarray:
    """Labels are 1, 0 or -1 (unknown) and every row knows at least one finding; return y (int64)."""
    findings = predictions.findings
    if not findings:
        raise ValueError("a multi-label task needs at least one finding")
    if len(set(findings)) != len(findings) or any(not str(f) for f in findings):
        raise ValueError(f"finding names must be distinct and non-empty: {list(findings)}")
    y = np.asarray(predictions.y_true)
    if y.shape[0] == 0:
        raise ValueError("no predictions")
    bad = np.argwhere(~np.isin(y, (-1, 0, 1)))
    if len(bad):
        row, column = (int(i) for i in bad[0])
        raise ValueError(
            f"y_true row {row}, finding {findings[column]!r}: {y[row, column]!r} is not 1, 0 or -1 (unknown)"
        )
    unknown = np.flatnonzero((y < 0).all(axis=1))
    if len(unknown):
        raise ValueError(
            f"y_true row {int(unknown[0])}: every finding is missing ({len(unknown)} such row(s)); "
            "a sample must know at least one finding"
        )
    return y.astype(np.int64)


def _largest_attribute_gaps(report: dict) -> dict[str, dict]:
    """Per headline gap, the largest attribute finding of a binary report's summary."""
    out: dict[str, dict] = {}
    for finding in report["summary"]["findings"]:
        if finding["kind"] != "attribute":
            continue
        best = out.get(finding["gap"])
        if best is None or finding["value"] > best["value"]:
            out[finding["gap"]] = finding
    return {name: out[name] for name in SUMMARY_GAPS if name in out}


def build_multilabel_report(
    predictions: MultilabelPredictionSet,
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """The ``MultilabelReport`` of ``predictions`` (see the module docstring)."""
    y = validate_multilabel(predictions)
    per_finding, counts, summary = {}, {}, []
    for index, name in enumerate(predictions.findings):
        column = y[:, index]
        known = int((column >= 0).sum())
        if known == 0:
            raise ValueError(f"finding {name!r}: no sample has a known label")
        try:
            report = build_binary_report(
                predictions.finding(index),
                attributes=attributes,
                intersections=intersections,
                n_boot=n_boot,
                seed=seed,
                min_count=min_count,
                confidence=confidence,
            )
        except ValueError as error:
            raise ValueError(f"finding {name!r}: {error}") from error
        per_finding[name] = report
        counts[name] = {
            "n": known,
            "n_pos": int((column == 1).sum()),
            "n_neg": int((column == 0).sum()),
            "n_unknown": int((column < 0).sum()),
        }
        summary.append(
            {"finding": name, "verdict": report["summary"]["verdict"], "gaps": _largest_attribute_gaps(report)}
        )
    return {
        "task": "multilabel",
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "findings": list(predictions.findings),
        "population": {"n": len(y), "n_exits": predictions.n_exits, "per_finding": counts},
        "per_finding": per_finding,
        "summary": summary,
    }
