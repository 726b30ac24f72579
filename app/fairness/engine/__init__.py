"""Pure-numpy fairness metrics engine (no web, database or torch imports).

Public API: ``build_report``, ``metric_rows``, ``compare_models``, ``METRIC_DEFINITION_VERSION`` and
the input contracts ``PredictionSet`` (binary), ``MulticlassPredictionSet`` and
``MultilabelPredictionSet``. The binary report structure is documented in ``binary.py``, the
multi-class one in ``multiclass.py`` and ``report_schema``. Model selection uses the same rank sums
through ``ranking`` (AUC, PF, PFD of one column) and the decision rules in ``thresholds``
(operating threshold, early-exit policy).
"""

from app.fairness.engine.compare import compare_models
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.engine.report import METRIC_DEFINITION_VERSION, build_report, metric_rows

__all__ = [
    "METRIC_DEFINITION_VERSION",
    "AnyPredictionSet",
    "MulticlassPredictionSet",
    "MultilabelPredictionSet",
    "PredictionSet",
    "build_report",
    "compare_models",
    "metric_rows",
]
