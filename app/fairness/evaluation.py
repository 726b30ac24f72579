"""Turning predictions into a stored-ready evaluation: the report, its flat metric rows and the
settings it was computed with. Every kind of evaluation (training, audit, external validation,
monitoring) goes through here, so they all follow one metric definition."""

from __future__ import annotations

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


def evaluate_predictions(
    predictions: PredictionSet,
    *,
    attributes: list[str],
    settings: Settings,
    seed: int = 0,
    n_boot: int | None = None,
) -> EvaluationOutcome:
    present = [a for a in attributes if a in predictions.groups]
    report = build_report(
        predictions,
        attributes=present,
        intersections=len(present) > 1,
        n_boot=settings.bootstrap_resamples if n_boot is None else n_boot,
        seed=seed,
        min_count=settings.min_group_count,
    )
    return EvaluationOutcome(
        report=report,
        rows=list(metric_rows(report)),
        version=METRIC_DEFINITION_VERSION,
        config=report["config"],
    )
