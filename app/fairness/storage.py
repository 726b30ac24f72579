"""Saving an evaluation: its report, one metric row per value, and the predictions behind it.

Predictions are kept (``<data_dir>/evaluations/<id>/predictions.npz``) because a comparison of two
evaluations on the same samples needs them for its paired bootstrap, and an auditor can download them
(``predictions_csv``). Text columns (sample ids, patient clusters, folds, groups) are stored as fixed-width
unicode, never pickled; ``clusters`` and ``folds`` are optional, so files written before they existed load.
``threshold`` is a scalar, or one value per sample for pooled out-of-fold predictions.

Multi-class and multi-label predictions (``app.modelpkg.task``) add a ``task`` member and their class or
finding names: multiclass ``exit_probs`` ``(n, exits, K)`` and optional ``class_thresholds`` ``(K,)``;
multilabel ``y_true`` ``(n, F)`` (-1 unknown), ``exit_scores`` ``(n, exits, F)`` and ``thresholds``
``(F,)`` or ``(n, F)``. A file without ``task`` is binary, as every file written before tasks existed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from app.db.base import new_id
from app.db.engine import on_rollback
from app.db.live_work import hold_until_settled
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.models import Evaluation, MetricRow
from app.modelpkg.task import TaskKind
from app.settings import Settings

PREDICTIONS_FILE = "predictions.npz"
TEXT_COLUMNS = ("sample_ids", "clusters", "folds")  # optional per-sample labels, stored as str


def evaluation_dir(settings: Settings, evaluation_id: str) -> Path:
    return settings.data_dir / "evaluations" / evaluation_id


def remove_evaluation_files(settings: Settings, evaluation_id: str) -> None:
    shutil.rmtree(evaluation_dir(settings, evaluation_id), ignore_errors=True)


def save_predictions(folder: Path, predictions: AnyPredictionSet) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = _task_arrays(predictions)
    for name in ("exit_index", "exit_cost", *TEXT_COLUMNS):
        value = getattr(predictions, name)
        if value is not None:
            arrays[name] = np.asarray(value, dtype=str) if name in TEXT_COLUMNS else value
    for attribute, values in predictions.groups.items():
        arrays[f"group:{attribute}"] = np.array(["" if v is None else str(v) for v in values], dtype=str)
        arrays[f"missing:{attribute}"] = np.array([v is None for v in values], dtype=bool)
    np.savez_compressed(folder / PREDICTIONS_FILE, **arrays)  # type: ignore[arg-type]  # numpy stub quirk


def _task_arrays(predictions: AnyPredictionSet) -> dict[str, np.ndarray]:
    """The labels, scores and decision thresholds of each task. A binary file has no ``task`` member (as
    before tasks existed); the others store theirs and their names, their 3-D scores row-major (the CSV
    download streams rows)."""
    if isinstance(predictions, PredictionSet):
        return {
            "y_true": predictions.y_true,
            "exit_scores": predictions.exit_scores,
            "threshold": np.asarray(predictions.threshold),
        }
    if isinstance(predictions, MulticlassPredictionSet):
        arrays = {
            "task": np.asarray("multiclass"),
            "classes": np.asarray(predictions.classes, dtype=str),
            "y_true": np.asarray(predictions.y_true, dtype=np.int64),
            "exit_probs": np.ascontiguousarray(predictions.exit_probs, dtype=np.float64),
        }
        if predictions.class_thresholds is not None:
            arrays["class_thresholds"] = np.asarray(predictions.class_thresholds, dtype=np.float64)
        return arrays
    return {
        "task": np.asarray("multilabel"),
        "findings": np.asarray(predictions.findings, dtype=str),
        "y_true": np.asarray(predictions.y_true, dtype=np.int8),
        "exit_scores": np.ascontiguousarray(predictions.exit_scores, dtype=np.float64),
        "thresholds": np.ascontiguousarray(predictions.thresholds, dtype=np.float64),
    }


def stored_task(member: np.ndarray | None) -> TaskKind:
    """The task a predictions file's ``task`` member names; files written before tasks existed have none
    and are binary."""
    if member is None:
        return "binary"
    kind = str(member)
    if kind not in ("multiclass", "multilabel"):
        raise ValueError(f"stored predictions name an unknown task {kind!r}")
    return "multiclass" if kind == "multiclass" else "multilabel"


def load_predictions(folder: Path) -> AnyPredictionSet:
    with np.load(folder / PREDICTIONS_FILE, allow_pickle=False) as data:
        files = set(data.files)
        groups = {}
        for key in data.files:
            if key.startswith("group:"):
                name = key.removeprefix("group:")
                missing = data[f"missing:{name}"]
                values = np.empty(len(data[key]), dtype=object)
                values[:] = [None if gone else str(v) for v, gone in zip(data[key], missing, strict=True)]
                groups[name] = values
        common: dict[str, Any] = {
            "groups": groups,
            "exit_index": data["exit_index"] if "exit_index" in files else None,
            "exit_cost": data["exit_cost"] if "exit_cost" in files else None,
            **{name: np.asarray(data[name], dtype=object) if name in files else None for name in TEXT_COLUMNS},
        }
        task = stored_task(data["task"] if "task" in files else None)
        if task == "multiclass":
            return MulticlassPredictionSet(
                y_true=data["y_true"],
                exit_probs=data["exit_probs"],
                classes=tuple(str(c) for c in data["classes"]),
                class_thresholds=data["class_thresholds"] if "class_thresholds" in files else None,
                **common,
            )
        if task == "multilabel":
            return MultilabelPredictionSet(
                y_true=data["y_true"].astype(np.int64),
                exit_scores=data["exit_scores"],
                findings=tuple(str(f) for f in data["findings"]),
                thresholds=data["thresholds"],
                **common,
            )
        return PredictionSet(
            y_true=data["y_true"],
            exit_scores=data["exit_scores"],
            threshold=float(data["threshold"]) if data["threshold"].ndim == 0 else data["threshold"],
            **common,
        )


def store_evaluation(
    session: Session,
    settings: Settings,
    *,
    organisation_id: str,
    kind: str,
    name: str,
    predictions: AnyPredictionSet,
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    metric_definition_version: str,
    config: dict[str, Any],
    model_version_id: str | None = None,
    cohort_id: str | None = None,
    job_id: str | None = None,
    split: str | None = None,
) -> Evaluation:
    """Insert the evaluation and its metric rows and write its predictions; never commits. The files
    are removed again if the transaction rolls back."""
    evaluation = Evaluation(
        id=new_id("evl"),
        organisation_id=organisation_id,
        kind=kind,
        name=name,
        status="ready",
        model_version_id=model_version_id,
        cohort_id=cohort_id,
        job_id=job_id,
        split=split,
        config=config,
        metric_definition_version=metric_definition_version,
        report=report,
    )
    session.add(evaluation)
    session.flush()
    _insert_metric_rows(session, evaluation.id, rows)
    folder = evaluation_dir(settings, evaluation.id)
    on_rollback(session, lambda: remove_evaluation_files(settings, evaluation.id))
    hold_until_settled(session, folder)
    save_predictions(folder, predictions)
    return evaluation


def complete_evaluation(
    session: Session, evaluation_id: str, *, report: dict[str, Any], rows: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    """Store the report and metric rows of an evaluation created ``running`` (its predictions are on
    disk already); never commits."""
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise LookupError(f"evaluation {evaluation_id} no longer exists")
    evaluation.report, evaluation.config, evaluation.status = report, config, "ready"
    _insert_metric_rows(session, evaluation_id, rows)


def fail_evaluation_of_job(session: Session, job_id: str, reason: str) -> None:
    """The evaluation waiting on job ``job_id`` (an audit's), now that the job failed or was cancelled:
    ``failed``, with the reason (``on_failure`` in ``app.jobs.handlers``); never commits."""
    session.execute(
        update(Evaluation)
        .where(Evaluation.job_id == job_id, Evaluation.status == "running")
        .values(status="failed", error=reason)
    )


def _insert_metric_rows(session: Session, evaluation_id: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(MetricRow), [{**row, "evaluation_id": evaluation_id} for row in rows])
