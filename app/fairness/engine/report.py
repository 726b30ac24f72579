"""The fairness report of any task: ``build_report`` (a JSON-serialisable dict) and ``metric_rows``.

``build_report`` dispatches on the prediction set: a binary ``PredictionSet`` gets the binary report
(``binary.py``, whose docstring gives its structure), a ``MulticlassPredictionSet`` the multi-class
report (``multiclass.py``) and a ``MultilabelPredictionSet`` one binary report per finding
(``multilabel.py``). ``app.fairness.report_schema`` types all three; ``docs/report-format.md``
explains them.
"""

from __future__ import annotations

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, build_binary_report
from app.fairness.engine.groups import Intersections
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.multiclass import build_multiclass_report
from app.fairness.engine.multilabel import build_multilabel_report
from app.fairness.engine.rows import metric_rows

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
    if isinstance(predictions, MulticlassPredictionSet):
        return build_multiclass_report(
            predictions,
            attributes=attributes,
            intersections=intersections,
            n_boot=n_boot,
            seed=seed,
            min_count=min_count,
            confidence=confidence,
        )
    if isinstance(predictions, MultilabelPredictionSet):
        return build_multilabel_report(
            predictions,
            attributes=attributes,
            intersections=intersections,
            n_boot=n_boot,
            seed=seed,
            min_count=min_count,
            confidence=confidence,
        )
    return build_binary_report(
        predictions,
        attributes=attributes,
        intersections=intersections,
        n_boot=n_boot,
        seed=seed,
        min_count=min_count,
        confidence=confidence,
    )
