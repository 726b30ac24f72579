"""The study's completion job: per config, pool the out-of-fold predictions of its children into one
stored evaluation (kind ``study``), compare every config with the reference on the same samples, and
end the study with the result, in the transaction that ends the job."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.models import Cohort
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.fairness.engine.compare import compare_models
from app.fairness.engine.inputs import AnyPredictionSet
from app.fairness.evaluation import EvaluationOutcome, evaluate_predictions
from app.fairness.storage import evaluation_dir, load_predictions, store_evaluation
from app.jobs.context import Completion, JobContext
from app.studies import repository
from app.studies.children import ChildRole, role_of
from app.studies.completion import end_study
from app.studies.models import Study
from app.studies.pooling import FoldPredictions, decision_thresholds, pool

OOF_SPLIT = "oof"  # out-of-fold


def _config_label(index: int, config: dict[str, Any]) -> str:
    return f"config {index} ({config['method']})"


def run_study_job(ctx: JobContext) -> Completion:
    study_id = str(ctx.config["study_id"])
    with ctx.session_factory() as session:
        study = session.get(Study, study_id)
        cohort = session.get(Cohort, study.cohort_id) if study is not None else None
        if study is None or cohort is None:
            raise InputError(f"study {study_id} or its cohort no longer exists")
        configs, name, attributes = list(study.configs), study.name, list(cohort.attributes)
        children = [
            (role_of(job), job.status, dict(job.result or {})) for job in repository.children(session, study_id)
        ]
    arrays = load_cohort_arrays(cache_dir(ctx.settings, cohort.id))
    patient_of = {
        str(i): (None if p is None else str(p)) for i, p in zip(arrays.item_ids, arrays.patient_ids, strict=True)
    }

    pooled: dict[int, AnyPredictionSet] = {}
    summaries: list[dict[str, Any]] = []
    for index, config in enumerate(configs):
        mine = [(role, status, result) for role, status, result in children if role.config == index]
        parts = [
            FoldPredictions(
                role.seed or 0, role.fold, load_predictions(evaluation_dir(ctx.settings, result["evaluation_id"]))
            )
            for role, status, result in mine
            if role.fold is not None and status == "succeeded"
        ]
        final = next((r.get("model_version_id") for role, s, r in mine if role.fold is None and s == "succeeded"), None)
        summaries.append(_summary(index, config, parts, mine, final))
        if parts:
            try:
                pooled[index] = pool(parts, patient_of)
            except ValueError as exc:  # folds of different tasks or decision rules
                raise InputError(f"{_config_label(index, config)}: {exc}") from None
        ctx.check_cancel()
        ctx.progress(
            {"phase": "pool", "done": index + 1, "total": len(configs), "fraction": (index + 1) / (len(configs) + 1)}
        )
    if 0 not in pooled:
        raise InputError("the reference config (configs.0) has no fold that succeeded: nothing to compare with")

    outcomes: dict[int, EvaluationOutcome] = {
        index: evaluate_predictions(predictions, attributes=attributes, settings=ctx.settings)
        for index, predictions in pooled.items()
    }
    comparison = _compare(pooled, configs, attributes, ctx) if len(pooled) > 1 else None
    ctx.progress({"phase": "store", "fraction": 1.0}, force=True)

    def register(session: Session) -> dict[str, Any]:
        evaluations = {}
        for index, outcome in outcomes.items():
            summary = summaries[index]
            stored = store_evaluation(
                session,
                ctx.settings,
                organisation_id=ctx.organisation_id,
                kind="study",
                name=f"{configs[index]['method']} study {name} (config {index})"[:200],
                predictions=pooled[index],
                report=outcome.report,
                rows=outcome.rows,
                metric_definition_version=outcome.version,
                config={**outcome.config, "study_id": study_id, "study_config": index},
                model_version_id=summary["final_model_version_id"],
                cohort_id=cohort.id,
                job_id=ctx.job_id,
                split=OOF_SPLIT,
            )
            summary["evaluation_id"] = evaluations[index] = stored.id
        result = {"configs": summaries, "reference": 0, "comparison": comparison}
        if not end_study(session, study_id, "succeeded", result=result):
            raise InputError(f"study {study_id} ended while its predictions were being pooled")
        return {"evaluation_ids": [evaluations[i] for i in sorted(evaluations)]}

    return Completion(result={"configs": len(configs)}, register=register)


def _summary(
    index: int,
    config: dict[str, Any],
    parts: list[FoldPredictions],
    mine: list[tuple[ChildRole, str, dict[str, Any]]],
    final: str | None,
) -> dict[str, Any]:
    missing = [f"{role.label}: {status}" for role, status, _ in mine if role.fold is not None and status != "succeeded"]
    return {
        "index": index,
        "label": _config_label(index, config),
        "method": config["method"],
        "pooled": [f"s{p.seed}/f{p.fold}" for p in parts],
        "missing": missing,
        "thresholds": {f"s{p.seed}/f{p.fold}": decision_thresholds(p.predictions) for p in parts},
        "n_predictions": sum(len(p.predictions.y_true) for p in parts),
        "final_model_version_id": final,
        "evaluation_id": None,
    }


def _compare(
    pooled: dict[int, AnyPredictionSet], configs: list[dict[str, Any]], attributes: list[str], ctx: JobContext
) -> dict[str, Any]:
    """Every config against the reference on the samples both predicted (paired by ``s<seed>/<item>``,
    patients resampled together): the engine's differences, Δ compute and verdict per attribute."""
    labelled = {_config_label(i, configs[i]): predictions for i, predictions in sorted(pooled.items())}
    shared = [a for a in attributes if all(a in p.groups for p in labelled.values())]
    return compare_models(
        labelled,
        attributes=shared,
        n_boot=ctx.settings.bootstrap_resamples,
        seed=0,
        min_count=ctx.settings.min_group_count,
    )
