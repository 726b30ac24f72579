"""The training job: train on a ready cohort, export, evaluate on the test split, and register the
model version with its evaluation in the transaction that marks the job succeeded.

The export is written to a per-job staging folder and moved into the model repository only inside
that transaction (moved back out if it rolls back), so a failed or cancelled run leaves no model
version and no files.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cohorts.models import Cohort
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.db.engine import on_rollback
from app.fairness.evaluation import evaluate_predictions, intersections_to_report
from app.fairness.storage import store_evaluation
from app.jobs.context import Cancelled, Completion, JobContext
from app.jobs.files import staging_model_dir
from app.jobs.models import Job
from app.serving.models import ModelVersion
from app.training import progress as training_progress
from app.training.config import FoldPlan, TrainingConfig, training_fields
from app.training.run import TrainingResult, run_training


def tested_on(config: dict[str, Any]) -> str:
    """The split a training job's evaluation is on: the test split, or a study child's held-out fold."""
    plan = config.get("fold_plan")
    return "test" if plan is None else FoldPlan.model_validate(plan).label


def _finite(value: float | None) -> float | None:
    """JSON has no NaN (PostgreSQL refuses it): an undefined value (a validation split too small for a
    group's PF) is reported as null."""
    return value if value is None or math.isfinite(value) else None


def _progress_reporter(ctx: JobContext) -> training_progress.ProgressCallback:
    def report(event: training_progress.ProgressEvent) -> None:
        data: dict[str, Any] = {
            "phase": event.phase,
            "epoch": event.epoch,
            "epochs": event.epochs,
            "step": event.step,
            "total_steps": event.total_steps,
            "losses": {name: _finite(value) for name, value in event.losses.items()},
            "images_per_s": event.images_per_s,
            "eta_s": event.eta_s,
            "val_auc": _finite(event.val_auc),
            "val_pfd": _finite(event.val_pfd),
            "message": event.message,
            "fraction": event.step / event.total_steps if event.total_steps else 0.0,
        }
        multiclass = {
            "val_accuracy": event.val_accuracy,
            "val_macro_f1": event.val_macro_f1,
            "val_eopp1": event.val_eopp1,
        }
        data |= {name: _finite(value) for name, value in multiclass.items() if value is not None}
        history = data if event.phase == "validate" else None
        ctx.progress(data, history_entry=history, force=event.phase not in ("train",))

    return report


def _thresholds(result: TrainingResult) -> dict[str, Any]:
    """The model version's thresholds as registered: the binary operating threshold and its rule, the
    exits' θ, and for a multiclass or multilabel model its decision (``model.json``'s ``decision``)."""
    rule, decision = result.manifest.operating_threshold_rule, result.manifest.decision
    thresholds: dict[str, Any] = {
        "operating": result.operating_threshold,
        "exits": result.exit_thresholds,
        "rule": rule.model_dump(mode="json") if rule else None,
    }
    if decision is not None:
        thresholds["decision"] = decision.model_dump(mode="json")
    return thresholds


def run_training_job(ctx: JobContext) -> Completion:
    with ctx.session_factory() as session:
        cohort = session.get(Cohort, ctx.cohort_id)
        if cohort is None or cohort.deleted_at is not None or cohort.status != "ready":
            raise InputError(f"cohort {ctx.cohort_id} is not available for training")
        cohort_attributes = list(cohort.attributes)
        version = session.scalar(select(Job.model_version_id).where(Job.id == ctx.job_id))
        teacher = TrainingConfig.model_validate(training_fields(ctx.config)).teacher_model_version_id
        teacher_path = session.scalar(select(ModelVersion.path).where(ModelVersion.id == teacher)) if teacher else None
    if version is None:
        raise InputError(f"training job {ctx.job_id} was queued without a model version id")
    # one job per core share: oversubscribed OpenMP threads spin against each other on small machines
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ctx.settings.max_concurrent_jobs))
    staging = staging_model_dir(ctx.settings, ctx.job_id)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        result = run_training(
            cache_dir(ctx.settings, ctx.cohort_id or ""),
            training_fields(ctx.config),
            ctx.work_dir,
            staging,
            version,
            progress=_progress_reporter(ctx),
            should_cancel=ctx.should_cancel,
            teacher_dir=ctx.settings.model_dir / teacher_path if teacher_path else None,
        )
    except training_progress.Cancelled:
        raise Cancelled() from None
    ctx.progress({"phase": "report", "message": "computing the fairness report", "fraction": 1.0}, force=True)
    trained = list(ctx.config["sensitive_attributes"])
    evaluation = evaluate_predictions(
        result.test_predictions,
        attributes=list(result.test_predictions.groups),  # the cohort's, then the groupings' derived ones
        settings=ctx.settings,
        seed=int(ctx.config.get("seed", 0)),
        intersections=intersections_to_report(cohort_attributes, ctx.config.get("report_intersections"), trained),
        trained_attributes=trained,
    )

    split = tested_on(ctx.config)

    def register(session: Session) -> dict[str, Any]:
        final = ctx.settings.model_dir / version
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and session.get(ModelVersion, version) is None:
            shutil.rmtree(final)  # left by an attempt killed between publishing and committing
        os.replace(result.model_path, final)
        on_rollback(session, lambda: shutil.rmtree(final, ignore_errors=True))
        model = ModelVersion(
            id=version,
            organisation_id=ctx.organisation_id,
            job_id=ctx.job_id,
            cohort_id=ctx.cohort_id,
            method=str(ctx.config["method"]),
            backbone=str(ctx.config["backbone"]),
            path=version,
            sha256=result.manifest_sha256,
            files={name: entry.sha256 for name, entry in result.manifest.files.items()},
            thresholds=_thresholds(result),
            config=dict(ctx.config),
            stage="candidate",
        )
        session.add(model)
        session.flush()
        stored = store_evaluation(
            session,
            ctx.settings,
            organisation_id=ctx.organisation_id,
            kind="training",
            name=f"{ctx.config['method']} on {ctx.cohort_id} ({split if split != 'test' else 'test split'})",
            predictions=result.test_predictions,
            report=evaluation.report,
            rows=evaluation.rows,
            metric_definition_version=evaluation.version,
            config=evaluation.config,
            model_version_id=version,
            cohort_id=ctx.cohort_id,
            job_id=ctx.job_id,
            split=split,
        )
        return {"model_version_id": version, "evaluation_id": stored.id}

    return Completion(
        result={"best_epoch": result.best_epoch, "device": result.device, "validation": result.validation},
        register=register,
    )
