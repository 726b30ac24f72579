"""Saving an evaluation: its report, one metric row per value, and the predictions behind it.

Predictions are kept (``<data_dir>/evaluations/<id>/predictions.npz``) because a comparison of two
evaluations on the same samples needs them for its paired bootstrap, and an auditor can download them
(``predictions_csv``). Text columns (sample ids, patient clusters, folds, groups) are stored as fixed-width
unicode, never pickled; ``clusters`` and ``folds`` are optional, so files written before they existed load.
``threshold`` is a scalar, or one value per sample for pooled out-of-fold predictions.
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
from app.fairness.engine.inputs import PredictionSet
from app.fairness.models import Evaluation, MetricRow
from app.settings import Settings

PREDICTIONS_FILE = "predictions.npz"
TEXT_COLUMNS = ("sample_ids", "clusters", "folds")  # optional per-sample labels, stored as str


def evaluation_dir(settings: Settings, evaluation_id: str) -> Path:
    return settings.data_dir / "evaluations" / evaluation_id


def remove_evaluation_files(settings: Settings, evaluation_id: str) -> None:
    shutil.rmtree(evaluation_dir(settings, evaluation_id), ignore_errors=True)


def save_predictions(folder: Path, predictions: PredictionSet) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "y_true": predictions.y_true,
        "exit_scores": predictions.exit_scores,
        "threshold": np.asarray(predictions.threshold),
    }
    for name in ("exit_index", "exit_cost", *TEXT_COLUMNS):
        value = getattr(predictions, name)
        if value is not None:
            arrays[name] = np.asarray(value, dtype=str) if name in TEXT_COLUMNS else value
    for attribute, values in predictions.groups.items():
        arrays[f"group:{attribute}"] = np.array(["" if v is None else str(v) for v in values], dtype=str)
        arrays[f"missing:{attribute}"] = np.array([v is None for v in values], dtype=bool)
    np.savez_compressed(folder / PREDICTIONS_FILE, **arrays)  # type: ignore[arg-type]  # numpy stub quirk


def load_predictions(folder: Path) -> PredictionSet:
    with np.load(folder / PREDICTIONS_FILE, allow_pickle=False) as data:
        groups = {}
        for key in data.files:
            if key.startswith("group:"):
                name = key.removeprefix("group:")
                missing = data[f"missing:{name}"]
                values = np.empty(len(data[key]), dtype=object)
                values[:] = [None if gone else str(v) for v, gone in zip(data[key], missing, strict=True)]
                groups[name] = values
        text = {name: np.asarray(data[name], dtype=object) for name in TEXT_COLUMNS if name in data.files}
        return PredictionSet(
            y_true=data["y_true"],
            exit_scores=data["exit_scores"],
            groups=groups,
            threshold=float(data["threshold"]) if data["threshold"].ndim == 0 else data["threshold"],
            exit_index=data["exit_index"] if "exit_index" in data.files else None,
            exit_cost=data["exit_cost"] if "exit_cost" in data.files else None,
            sample_ids=text.get("sample_ids"),
            clusters=text.get("clusters"),
            folds=text.get("folds"),
        )


def store_evaluation(
    session: Session,
    settings: Settings,
    *,
    organisation_id: str,
    kind: str,
    name: str,
    predictions: PredictionSet,
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
