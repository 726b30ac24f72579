"""Turning predictions into a stored-ready evaluation: the report, its flat metric rows and the
settings it was computed with. Every kind of evaluation (training, audit, external validation,
monitoring) goes through here, so they all follow one metric definition, whatever the task: binary,
multi-class or multi-label predictions (``app.fairness.engine.inputs``) give the report of their task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.report import METRIC_DEFINITION_VERSION, build_report, metric_rows
from app.modelpkg.task import TaskKind
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
    predictions: AnyPredictionSet,
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
        for config in report_configs(report):
            config["trained_attributes"] = list(trained_attributes)
    return EvaluationOutcome(
        report=report,
        rows=list(metric_rows(report)),
        version=METRIC_DEFINITION_VERSION,
        config=evaluation_config(report),
    )


def report_configs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The run configs inside a report: its own, or each finding's (a multi-label report has one per
    finding), so a setting recorded on the report reaches every one of them."""
    if report.get("task") == "multilabel":
        return [finding["config"] for finding in report["per_finding"].values()]
    return [report["config"]]


PER_FINDING_KEYS = ("threshold", "threshold_per_sample", "threshold_range", "threshold_source", "threshold_rule")


def evaluation_task(config: Mapping[str, Any]) -> TaskKind:
    """The task of an evaluation from the config it keeps (``evaluation_config``; an audit's adds its
    request under ``audit``, and a running audit keeps only that): a multi-label config says so, a
    multi-class one carries its ``decision`` rule."""
    if config.get("task") == "multilabel":
        return "multilabel"
    if "decision" in config:
        return "multiclass"
    task = (config.get("audit") or {}).get("task", "binary")
    return "multiclass" if task == "multiclass" else "multilabel" if task == "multilabel" else "binary"


def evaluation_config(report: dict[str, Any]) -> dict[str, Any]:
    """The settings an evaluation row keeps (``attributes``, seeds, thresholds …): the report's config;
    for a multi-label report, the findings' shared settings, with each finding's threshold by name."""
    if report.get("task") != "multilabel":
        return report["config"]  # the same dict: what is recorded on the report later is recorded here too
    per_finding = report["per_finding"]
    shared = {k: v for k, v in per_finding[report["findings"][0]]["config"].items() if k not in PER_FINDING_KEYS}
    thresholds = {name: finding["config"].get("threshold") for name, finding in per_finding.items()}
    return {**shared, "task": "multilabel", "findings": list(report["findings"]), "thresholds": thresholds}


def task_of(predictions: AnyPredictionSet) -> tuple[TaskKind, tuple[str, ...]]:
    """The task of a prediction set and its class or finding names (none for binary): two sets can be
    compared or pooled only when these are equal."""
    if isinstance(predictions, MulticlassPredictionSet):
        return "multiclass", predictions.classes
    if isinstance(predictions, MultilabelPredictionSet):
        return "multilabel", predictions.findings
    return "binary", ()


def describe_task(predictions: AnyPredictionSet) -> str:
    """E.g. "binary", "multiclass (3 classes: a, b, c)", in an error message."""
    kind, names = task_of(predictions)
    if kind == "binary":
        return kind
    what = "classes" if kind == "multiclass" else "findings"
    shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    return f"{kind} ({len(names)} {what}: {shown})"


def check_same_task(named: Mapping[str, AnyPredictionSet], what: str) -> None:
    """``ValueError`` naming the first ``what`` (e.g. "evaluation") whose task or classes differ from
    the first one's."""
    first_name, first = next(iter(named.items()))
    for name, predictions in named.items():
        if task_of(predictions) != task_of(first):
            raise ValueError(
                f"{what} {first_name} is {describe_task(first)} but {what} {name} is {describe_task(predictions)}: "
                "only one task with the same classes can be compared or pooled"
            )
