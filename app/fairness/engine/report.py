"""The fairness report of any task: ``build_report`` (a JSON-serialisable dict) and ``metric_rows``.

``build_report`` dispatches on the prediction set: a binary ``PredictionSet`` gets the binary report
(``binary.py``, whose docstring gives its structure), a ``MulticlassPredictionSet`` the multi-class
report (``multiclass.py``) and a ``MultilabelPredictionSet`` one binary report per finding
(``multilabel.py``). ``app.fairness.report_schema`` types all three; ``docs/report-format.md``
explains them.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, build_binary_report
from app.fairness.engine.evaluate import METRICS, num
from app.fairness.engine.groups import Intersections
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.multiclass import build_multiclass_report
from app.fairness.engine.multilabel import build_multilabel_report

__all__ = ["METRIC_DEFINITION_VERSION", "build_report", "metric_rows"]


def build_report(
    predictions: AnyPredictionSet,
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Per-group metrics, gaps, exit behaviour and a verdict, with intervals and statuses."""
    options = dict(
        attributes=attributes,
        intersections=intersections,
        n_boot=n_boot,
        seed=seed,
        min_count=min_count,
        confidence=confidence,
    )
    if isinstance(predictions, MulticlassPredictionSet):
        return build_multiclass_report(predictions, **options)
    if isinstance(predictions, MultilabelPredictionSet):
        return build_multilabel_report(predictions, **options)
    return build_binary_report(predictions, **options)


def _row(attribute: str, group: str, exit_key: object, metric: str, value: dict | float | None, n) -> dict:
    if isinstance(value, dict):
        return {
            "attribute": attribute,
            "group": group,
            "exit": str(exit_key),
            "metric": metric,
            "value": value.get("value"),
            "ci_low": value.get("ci_low"),
            "ci_high": value.get("ci_high"),
            "status": value.get("status", "ok"),
            "n": n if n is not None else value.get("n"),
        }
    return {
        "attribute": attribute,
        "group": group,
        "exit": str(exit_key),
        "metric": metric,
        "value": num(value),
        "ci_low": None,
        "ci_high": None,
        "status": "ok" if num(value) is not None else "undefined",
        "n": n,
    }


def metric_rows(report: dict) -> Iterator[dict]:
    """Flat rows (attribute, group, exit, metric, value, ci_low, ci_high, status, n) for storage.

    ``exit`` is a string ("0".."k" or "policy"); gaps and Fairlearn's differences use group "*".
    """
    for evaluation in report["evaluations"]:
        exit_key = evaluation["exit"]
        for grouping in evaluation["groupings"]:
            attribute = grouping["attribute"]
            for group in grouping["groups"]:
                label = group["group"]
                for count in ("n", "n_pos", "n_neg"):
                    yield _row(attribute, label, exit_key, count, float(group[count]), group["n"])
                for metric in METRICS:
                    yield _row(attribute, label, exit_key, metric, group["metrics"][metric], None)
            for name, gap in grouping.get("gaps", {}).items():
                yield _row(attribute, "*", exit_key, name, gap, len(gap["groups_used"]))
            for family, tests in grouping.get("tests", {}).items():
                for test in tests:
                    p = test["p_holm"]
                    yield _row(attribute, test["group"], exit_key, f"p_holm.{family}", p, None)
            fairlearn = grouping.get("fairlearn")
            if fairlearn:
                for label, rates in fairlearn["by_group"].items():
                    for rate, value in rates.items():
                        yield _row(attribute, label, exit_key, f"fairlearn.{rate}", value, None)
                for method in ("between_groups", "to_overall"):
                    for name, value in fairlearn[method].items():
                        yield _row(attribute, "*", exit_key, f"fairlearn.{name}.{method}", value, None)
    exits = report.get("exits")
    if exits:
        for grouping in exits["groupings"]:
            for group in grouping["groups"]:
                for e, rate in enumerate(group["exit_rates"]):
                    yield _row(grouping["attribute"], group["group"], e, "exit_rate", rate, None)
                if group["mean_compute"] is not None:
                    compute = group["mean_compute"]
                    yield _row(grouping["attribute"], group["group"], "policy", "mean_compute", compute, None)
