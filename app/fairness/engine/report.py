"""The fairness report of any task: ``build_report`` (a JSON-serialisable dict) and ``metric_rows``.

``build_report`` dispatches on the prediction set: a binary ``PredictionSet`` gets the binary report
(``binary.py``, whose docstring gives its structure), a ``MulticlassPredictionSet`` the multi-class
report (``multiclass.py``) and a ``MultilabelPredictionSet`` one binary report per finding
(``multilabel.py``). ``app.fairness.report_schema`` types all three; ``docs/report-format.md``
explains them.
"""

from __future__ import annotations

from collections.abc import Callable

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, build_binary_report
from app.fairness.engine.groups import Intersections
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.engine.multiclass import build_multiclass_report
from app.fairness.engine.multilabel import build_multilabel_report
from app.fairness.engine.rows import metric_rows

__all__ = ["METRIC_DEFINITION_VERSION", "build_report", "metric_rows"]

#: The report of each prediction-set type; every builder takes ``build_report``'s keyword arguments.
BUILDERS: dict[type, Callable[..., dict]] = {
    PredictionSet: build_binary_report,
    MulticlassPredictionSet: build_multiclass_report,
    MultilabelPredictionSet: build_multilabel_report,
}


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
    build = BUILDERS[type(predictions)]
    return build(
        predictions,
        attributes=attributes,
        intersections=intersections,
        n_boot=n_boot,
        seed=seed,
        min_count=min_count,
        confidence=confidence,
    )
