"""Paired comparison of models evaluated on the same samples: ``compare_models`` dispatches on the
task of the prediction sets (binary: ``binary_compare``; multi-class and multi-label:
``class_compare``). Every model of one comparison must be of the same task."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from app.fairness.engine.binary_compare import COMPARED_GAPS, HIGHER_IS_BETTER, OVERALL_METRICS, compare_binary
from app.fairness.engine.class_compare import compare_multiclass, compare_multilabel
from app.fairness.engine.groups import Intersections
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet

__all__ = ["COMPARED_GAPS", "HIGHER_IS_BETTER", "OVERALL_METRICS", "compare_models"]

TASKS = {PredictionSet: "binary", MulticlassPredictionSet: "multiclass", MultilabelPredictionSet: "multilabel"}
#: The comparison of each task; every one takes the same keyword arguments as ``compare_models``.
COMPARERS: dict[str, Callable[..., dict]] = {
    "binary": compare_binary,
    "multiclass": compare_multiclass,
    "multilabel": compare_multilabel,
}


def compare_models(
    predictions: Mapping[str, AnyPredictionSet],
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Differences of headline metrics, each model against the first (the reference), paired."""
    if len(predictions) < 2:
        raise ValueError("a comparison needs at least two models")
    tasks = {name: TASKS[type(p)] for name, p in predictions.items()}
    if len(set(tasks.values())) > 1:
        raise ValueError(f"models of one comparison must share a task, got {tasks}")
    compare = COMPARERS[next(iter(tasks.values()))]
    return compare(
        predictions,
        attributes=attributes,
        intersections=intersections,
        n_boot=n_boot,
        seed=seed,
        min_count=min_count,
        confidence=confidence,
    )
