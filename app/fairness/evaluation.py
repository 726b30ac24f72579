"""Turning predictions into a stored-ready evaluation: the report, its flat metric rows and the
settings it was computed with. Every kind of evaluation (training, audit, external validation,
monitoring) goes through here, so they all follow one metric definition."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.report import METRIC_DEFINITION_VERSION, build_report, metric_rows
from app.settings import Settings


@dataclass(frozen=True)
class EvaluationOutcome:
    report: dict[str, Any]
    rows: list[dict[str, Any]]
    version: str
    config: dict[str, Any]


def intersections_to_report(
    default_over: Sequence[str], requested: Sequence[Sequence[str]] | None, trained: Sequence[str] = ()
) -> list[list[str]]:
    """The intersections a report shows: the training groups' intersection first (when the model was
    trained on two or more attributes: always shown), then those ``requested`` or, when none were
    requested, the one intersection of ``default_over`` (a cohort's own attributes, not its groupings,
    which only coarsen one of them)."""
    chosen = [list(trained)] if len(trained) >= 2 else []
    if requested is not None:
        chosen += [list(names) for names in requested]
    elif len(default_over) >= 2:
        chosen.append(list(default_over))
    return chosen


def evaluate_predictions(
    predictions: PredictionSet,
    *,
    attributes: list[str],
    settings: Settings,
    seed: int = 0,
    n_boot: int | None = None,
    intersections: Sequence[Sequence[str]] | None = None,
    trained_attributes: Sequence[str] = (),
) -> EvaluationOutcome:
    """The report over ``attributes`` (those the predictions carry) and ``intersections`` (default: the
    intersection of all of them), with ``trained_attributes`` recorded when a model's training groups are
    known. An intersection naming an attribute the predictions lack is left out."""
    present = [a for a in attributes if a in predictions.groups]
    wanted = [list(present)] if intersections is None else intersections
    report = build_report(
        predictions,
        attributes=present,
        intersections=[names for names in wanted if len(names) >= 2 and set(names) <= set(present)],
        n_boot=settings.bootstrap_resamples if n_boot is None else n_boot,
        seed=seed,
        min_count=settings.min_group_count,
    )
    if trained_attributes:
        report["config"]["trained_attributes"] = list(trained_attributes)
    return EvaluationOutcome(
        report=report,
        rows=list(metric_rows(report)),
        version=METRIC_DEFINITION_VERSION,
        config=report["config"],
    )
