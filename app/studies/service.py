"""Study use cases: create (every check before any row), read with the children's progress, list,
cancel. Never commits."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.cohorts import service as cohorts
from app.cohorts.cache import CohortArrays, load_cohort_arrays
from app.cohorts.storage import cache_dir
from app.core.errors import ConflictError, InputError
from app.db.base import new_id, utcnow
from app.fairness.models import Evaluation
from app.jobs import handlers, state
from app.jobs.models import TERMINAL_STATUSES, Job
from app.settings import Settings
from app.studies import repository
from app.studies.children import child_config, fraction_done, role_of
from app.studies.models import STUDY_TERMINAL, Study
from app.studies.report_html import render_study_html
from app.studies.repository import STUDY_JOB_KIND
from app.studies.schemas import StudyChild, StudyCreate, StudyOut
from app.training.config import FoldPlan, TrainingConfig
from app.training.folds import apply_fold_plan, fold_plan_problems
from app.training.validation import validate_training_config
from app.training_jobs.service import checked_config

handlers.register(
    STUDY_JOB_KIND, "app.studies.completion_job:run_study_job", on_failure="app.studies.completion:fail_study_of_job"
)
handlers.register_duty("studies", "app.studies.completion:settle_studies")

DEFAULT_VAL_FRACTION = 0.15
MAX_SEED = 2**31 - 1


def planned_jobs(body: StudyCreate) -> int:
    """The training jobs a study creates: one per config, seed and fold, plus the final models."""
    return len(body.configs) * (body.folds * body.seeds + (1 if body.final_models else 0))


def _field_problems(problems: list[dict[str, str]], prefix: str) -> list[dict[str, str]]:
    return [{**p, "field": f"{prefix}.{p['field']}"} for p in problems]


def _config_list_problems(body: StudyCreate) -> list[dict[str, str]]:
    """Configs that do not belong in one study: another cohort, a fold plan of their own, a duplicate,
    per-class thresholds (pooling needs one decision rule)."""
    problems = []
    seen: dict[str, int] = {}
    for i, config in enumerate(body.configs):
        if config.cohort_id is not None and config.cohort_id != body.cohort_id:
            problems.append(
                {
                    "field": f"configs.{i}.cohort_id",
                    "message": f"names cohort {config.cohort_id}; the study's is {body.cohort_id}",
                }
            )
        if config.fold_plan is not None:
            problems.append({"field": f"configs.{i}.fold_plan", "message": "the study gives every child its fold"})
        key = TrainingConfig.model_validate(config.training_config()).model_dump_json()
        if key in seen:
            problems.append({"field": f"configs.{i}", "message": f"repeats configs.{seen[key]}: nothing to compare"})
        seen.setdefault(key, i)
        if config.seed + body.seeds - 1 > MAX_SEED:
            problems.append({"field": f"configs.{i}.seed", "message": f"seed + {body.seeds - 1} exceeds {MAX_SEED}"})
        if TrainingConfig.model_validate(config.training_config()).class_thresholds:
            problems.append(
                {
                    "field": f"configs.{i}.class_thresholds",
                    "message": "each fold model would fit its own class thresholds, and pooled out-of-fold "
                    "predictions are judged by one decision rule: use argmax (class_thresholds false) in a study",
                }
            )
    return problems


def _val_fraction(cohort_config: dict[str, Any]) -> float:
    """The validation share of the cohort's own random split, else the usual 15 %."""
    split = cohort_config.get("split") or {}
    fractions = split.get("fractions") if split.get("mode") == "random" else None
    value = float(fractions[1]) if fractions else 0.0
    return value if 0 < value < 1 else DEFAULT_VAL_FRACTION


def _stratify_by(configs: list[TrainingConfig]) -> list[str]:
    """Every config's training attributes, so the one set of folds is stratified for each of them."""
    return list(dict.fromkeys(a for c in configs for a in c.sensitive_attributes))


def _fold_plans(body: StudyCreate, seed: int, val_fraction: float, stratify_by: list[str]) -> list[FoldPlan]:
    return [
        FoldPlan(
            folds=body.folds,
            fold=fold,
            seed=seed,
            repeat_splits=body.repeat_splits,
            val_fraction=val_fraction,
            stratify_by=stratify_by,
        )
        for fold in range(body.folds)
    ]


def _check_folds(arrays: CohortArrays, configs: list[TrainingConfig], body: StudyCreate, val_fraction: float) -> None:
    """The folds exist (K ≤ the patients of every stratum) and every config fits every fold's split."""
    stratify_by = _stratify_by(configs)
    problems = fold_plan_problems(arrays, _fold_plans(body, 0, val_fraction, stratify_by)[0])
    if problems:
        raise InputError("the cohort cannot be split into that many folds", problems)
    split_seeds = range(body.seeds) if body.repeat_splits else range(1)
    for seed in split_seeds:
        for plan in _fold_plans(body, seed, val_fraction, stratify_by):
            fold = apply_fold_plan(arrays, plan)  # drawn once per fold, not once per config
            for i, config in enumerate(configs):
                try:
                    validate_training_config(config, fold)
                except InputError as exc:
                    raise InputError(
                        f"configs.{i} does not fit fold {plan.fold} (seed {seed}) of the cohort",
                        _field_problems(exc.errors, f"configs.{i}"),
                    ) from None


def create_study(session: Session, settings: Settings, principal: Principal, body: StudyCreate) -> Study:
    """Check everything, then queue every child in the caller's transaction (all or none)."""
    planned = planned_jobs(body)
    if planned > settings.max_study_jobs:
        finals = " + final models" if body.final_models else ""
        raise InputError(
            "the study would create too many jobs",
            [
                {
                    "field": "folds",
                    "message": f"{body.folds} folds × {body.seeds} seeds × {len(body.configs)} configs{finals} = "
                    f"{planned} training jobs; at most {settings.max_study_jobs} (FAIRAUDIT_MAX_STUDY_JOBS)",
                }
            ],
        )
    problems = _config_list_problems(body)
    if problems:
        raise InputError("the study's configs cannot be compared", problems)
    cohort = cohorts.require_ready(session, principal.organisation_id, body.cohort_id)
    arrays = load_cohort_arrays(cache_dir(settings, cohort.id))
    configs = []
    for i, requested in enumerate(body.configs):
        try:
            config = checked_config(settings, arrays, requested.training_config())
            if config.teacher_model_version_id is not None:
                message = "a study's folds would test on images the teacher trained on; train mfd runs as jobs"
                raise InputError(
                    "a study cannot train with a teacher", [{"field": config.teacher_field, "message": message}]
                )
            configs.append(config)
        except InputError as exc:
            raise InputError(f"configs.{i}: {exc.detail}", _field_problems(exc.errors, f"configs.{i}")) from None
    val_fraction = _val_fraction(cohort.config)
    _check_folds(arrays, configs, body, val_fraction)

    study = Study(
        id=new_id("std"),
        organisation_id=principal.organisation_id,
        cohort_id=cohort.id,
        name=body.name or " vs ".join(c.method for c in configs)[:200],
        status="running",
        folds=body.folds,
        seeds=body.seeds,
        repeat_splits=body.repeat_splits,
        allow_failures=body.allow_failures,
        final_models=body.final_models,
        val_fraction=val_fraction,
        configs=[c.model_dump(mode="json") for c in configs],
    )
    session.add(study)
    session.flush()
    stratify_by = _stratify_by(configs)
    for i, config in enumerate(configs):
        for seed in range(body.seeds):
            for plan in _fold_plans(body, seed, val_fraction, stratify_by):
                _queue_child(
                    session,
                    settings,
                    study,
                    i,
                    config.model_copy(update={"seed": config.seed + seed, "fold_plan": plan}),
                )
        if body.final_models:
            _queue_child(session, settings, study, i, config)
    return study


def _queue_child(session: Session, settings: Settings, study: Study, index: int, config: TrainingConfig) -> Job:
    return state.enqueue(
        session,
        organisation_id=study.organisation_id,
        kind="train",
        config=child_config(study.id, index, config.model_dump(mode="json")),
        cohort_id=study.cohort_id,
        method=config.method,
        model_version_id=new_id("mdl"),
        max_attempts=settings.max_attempts,
        study_id=study.id,
    )


def progress_of(study: Study, children: list[Job], completion: Job | None) -> float:
    """The mean progress of the children and the completion job (not yet queued: 0, or 1 once the
    study has ended without one)."""
    last = fraction_done(completion) if completion is not None else (1.0 if study.status in STUDY_TERMINAL else 0.0)
    units = [fraction_done(job) for job in children] + [last]
    return sum(units) / len(units)


def represent(session: Session, study: Study) -> StudyOut:
    jobs = repository.children(session, study.id)
    completion = session.get(Job, study.completion_job_id) if study.completion_job_id else None
    children = []
    for job in jobs:
        role = role_of(job)
        result = job.result or {}
        children.append(
            StudyChild(
                job_id=job.id,
                config=role.config,
                seed=role.seed,
                fold=role.fold,
                status=job.status,
                fraction=fraction_done(job),
                error=job.error,
                evaluation_id=result.get("evaluation_id"),
                model_version_id=result.get("model_version_id"),
            )
        )
    return StudyOut(
        id=study.id,
        name=study.name,
        status=study.status,
        cohort_id=study.cohort_id,
        folds=study.folds,
        seeds=study.seeds,
        repeat_splits=study.repeat_splits,
        allow_failures=study.allow_failures,
        final_models=study.final_models,
        val_fraction=study.val_fraction,
        configs=list(study.configs),
        progress=progress_of(study, jobs, completion),
        children=children,
        completion_job_id=study.completion_job_id,
        result=study.result,
        error=study.error,
        created_at=study.created_at,
        finished_at=study.finished_at,
    )


def cancel_study(session: Session, study: Study) -> Study:
    """Cancel every child (and the completion job) that has not ended; the study is cancelled at once."""
    if study.status in STUDY_TERMINAL:
        raise ConflictError(f"study {study.id} has already ended ({study.status})")
    jobs = repository.children(session, study.id)
    if study.completion_job_id:
        completion = session.get(Job, study.completion_job_id)
        jobs += [completion] if completion is not None else []
    for job in jobs:
        if job.status not in TERMINAL_STATUSES:
            with contextlib.suppress(ConflictError):  # it ended meanwhile
                state.request_cancel(session, job)
    study.status, study.finished_at = "cancelled", utcnow()
    return study


def report_html(session: Session, study: Study) -> str:
    """The study's HTML report; a study that has not succeeded has none (409 naming its status)."""
    if study.status != "succeeded" or study.result is None:
        reason = f": {study.error}" if study.error else ""
        raise ConflictError(f"study {study.id} has no report: it is {study.status}{reason}")
    reports = {}
    for summary in study.result["configs"]:
        evaluation = session.get(Evaluation, summary["evaluation_id"]) if summary["evaluation_id"] else None
        if evaluation is not None and evaluation.organisation_id == study.organisation_id and evaluation.report:
            reports[int(summary["index"])] = evaluation.report
    return render_study_html(represent(session, study), reports)
