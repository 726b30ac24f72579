"""Evaluation use cases: read, audit uploaded predictions, compare, external validation, model card.
Never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.cohorts import service as cohorts
from app.cohorts.groupings import parse_groupings
from app.cohorts.models import Cohort
from app.core.error_list import capped
from app.core.errors import ConflictError, InputError
from app.core.json_input import load_json_field
from app.db.base import new_id
from app.db.engine import on_rollback
from app.fairness.audit_csv import parse_predictions_csv
from app.fairness.audit_decision import AuditThreshold, audit_decision
from app.fairness.engine.compare import compare_models
from app.fairness.engine.inputs import AnyPredictionSet
from app.fairness.engine.report import METRIC_DEFINITION_VERSION
from app.fairness.evaluation import EvaluationOutcome, check_same_task, evaluate_predictions, intersections_to_report
from app.fairness.models import Evaluation
from app.fairness.operating_point import finding_threshold_records, threshold_record
from app.fairness.predictions_csv import PredictionsCsv
from app.fairness.repository import EVALUATIONS
from app.fairness.schemas import (
    AuditConfig,
    CompareRequest,
    EvaluationOut,
    ExternalEvaluationRequest,
)
from app.fairness.storage import (
    PREDICTIONS_FILE,
    evaluation_dir,
    load_predictions,
    remove_evaluation_files,
    save_predictions,
    store_evaluation,
)
from app.jobs import handlers, state
from app.jobs.models import Job
from app.serving import registry
from app.serving.models import ModelVersion
from app.settings import Settings

handlers.register(  # large uploaded audits run as jobs; their evaluation fails with the job
    "audit", "app.fairness.audit_job:run_audit_job", on_failure="app.fairness.storage:fail_evaluation_of_job"
)


def represent(session: Session, evaluation: Evaluation) -> EvaluationOut:
    out = EvaluationOut.model_validate(evaluation)
    if evaluation.model_version_id:
        model = session.get(ModelVersion, evaluation.model_version_id)
        out.model_files = dict(model.files) if model else None
    return out


def require_report(evaluation: Evaluation) -> None:
    if evaluation.report is None:
        raise ConflictError(f"evaluation {evaluation.id} has no report yet ({evaluation.status})")


def predictions_csv(session: Session, settings: Settings, organisation_id: str, evaluation_id: str) -> PredictionsCsv:
    """The evaluation's stored predictions, opened for streaming as CSV (``predictions_csv``)."""
    evaluation = EVALUATIONS.get_or_404(session, organisation_id, evaluation_id)
    folder = evaluation_dir(settings, evaluation.id)
    if not (folder / PREDICTIONS_FILE).is_file():
        raise ConflictError(f"evaluation {evaluation_id} has no stored predictions ({evaluation.status})")
    return PredictionsCsv(folder, patient_key=evaluation.cohort_id or evaluation.id)


def report_metadata(session: Session, evaluation: EvaluationOut) -> dict[str, Any]:
    """What every report names: model version and its file hashes, cohort and split, thresholds,
    seeds and the metric-definition version."""
    report: Mapping[str, Any] = evaluation.report or {}
    config: Mapping[str, Any] = report.get("config", evaluation.config)  # a multi-label report's is per finding
    meta: dict[str, Any] = {
        "evaluation": evaluation.id,
        "kind": evaluation.kind,
        "metric definition version": evaluation.metric_definition_version,
        "cohort": evaluation.cohort_id or "uploaded predictions",
        "split": evaluation.split,
        "operating threshold": config.get("threshold", config.get("thresholds")),
        "bootstrap seed": config.get("seed"),
    }
    if "decision" in config:  # multiclass: no operating threshold, argmax or argmax of p / class threshold
        del meta["operating threshold"]
        meta.update({"decision": config["decision"], "class thresholds": config.get("class_thresholds")})
    if evaluation.model_version_id:
        model = session.get(ModelVersion, evaluation.model_version_id)
        if model is not None:
            meta.update(
                {
                    "model version": model.id,
                    "method": model.method,
                    "backbone": model.backbone,
                    "model.json SHA-256": model.sha256,
                    "exit thresholds": model.thresholds.get("exits"),
                    "training seed": model.config.get("seed"),
                }
            )
            meta.update({f"SHA-256 {name}": sha for name, sha in sorted(model.files.items())})
    return meta


def study_of(evaluation: Evaluation, model: ModelVersion | None) -> str | None:
    """The study an evaluation is evidence of: a study's pooled evaluation names it in its config, a
    model a study trained (a fold's, or a final model) in the model's config (its job's)."""
    found = evaluation.config.get("study_id") or (model.config.get("study_id") if model is not None else None)
    return str(found) if found else None


def related_pages(session: Session, evaluation: Evaluation) -> list[tuple[str, str]]:
    """(label, URL) of the service's pages an evaluation's report links to: its study's."""
    model = session.get(ModelVersion, evaluation.model_version_id) if evaluation.model_version_id else None
    study_id = study_of(evaluation, model)
    return [] if study_id is None else [(f"study {study_id} (report)", f"/v1/studies/{study_id}/report")]


def threshold_record_of(session: Session, evaluation: Evaluation) -> dict[str, Any] | None:
    """How the evaluation's operating threshold was chosen (``app.fairness.operating_point``)."""
    model = session.get(ModelVersion, evaluation.model_version_id) if evaluation.model_version_id else None
    return threshold_record(evaluation, model)


def finding_threshold_records_of(session: Session, evaluation: Evaluation) -> dict[str, Any] | None:
    """How a trained multi-label model chose each finding's threshold (``app.fairness.operating_point``)."""
    model = session.get(ModelVersion, evaluation.model_version_id) if evaluation.model_version_id else None
    return finding_threshold_records(evaluation, model)


def _parse_audit_config(raw: str) -> AuditConfig:
    data = load_json_field(raw)
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            "invalid audit config",
            capped(
                {"field": ".".join(str(p) for p in e["loc"]) or "config", "message": e["msg"]} for e in exc.errors()
            ),
        ) from None


def create_audit(
    session: Session, settings: Settings, principal: Principal, source: IO[bytes], raw_config: str
) -> Evaluation:
    """Audit predictions made elsewhere. The file is parsed and checked here (4xx naming every bad
    cell). Up to ``audit_sync_max_rows`` rows the report is computed here too (``ready``); a larger
    file's report is computed by an audit job (the evaluation is ``running`` with its ``job_id``)."""
    config = _parse_audit_config(raw_config)
    parsed = parse_predictions_csv(source, config.sensitive_attributes, settings, config.task, config.classes)
    predictions, threshold = audit_decision(parsed, config)
    if len(predictions.y_true) > settings.audit_sync_max_rows:
        return _start_audit_job(session, settings, principal, config, predictions, threshold)
    outcome = audit_outcome(predictions, config, threshold, settings)
    return store_evaluation(
        session,
        settings,
        organisation_id=principal.organisation_id,
        kind="audit",
        name=config.name,
        predictions=predictions,
        report=outcome.report,
        rows=outcome.rows,
        metric_definition_version=outcome.version,
        config=audit_evaluation_config(outcome, config),
    )


def audit_outcome(
    predictions: AnyPredictionSet, config: AuditConfig, threshold: AuditThreshold, settings: Settings
) -> EvaluationOutcome:
    """The report of an audit, in the request or in its job, with where its thresholds came from."""
    outcome = evaluate_predictions(
        predictions,
        attributes=config.sensitive_attributes,
        settings=settings,
        seed=config.seed,
        intersections=intersections_to_report(config.sensitive_attributes, config.report_intersections),
    )
    report = outcome.report
    if report.get("task") == "multilabel":
        for name, finding in report["per_finding"].items():
            finding["config"]["threshold_source"] = threshold.source
            if threshold.record is not None and name in threshold.record:
                finding["config"]["threshold_rule"] = threshold.record[name]
    else:
        report["config"]["threshold_source"] = threshold.source
        if threshold.record is not None:
            report["config"]["threshold_rule"] = threshold.record
    outcome.config["threshold_source"] = threshold.source
    if threshold.record is not None:
        outcome.config["threshold_rule"] = threshold.record
    return outcome


def audit_evaluation_config(outcome: EvaluationOutcome, config: AuditConfig) -> dict[str, Any]:
    return {**outcome.config, "audit": config.model_dump(mode="json")}


def _start_audit_job(
    session: Session,
    settings: Settings,
    principal: Principal,
    config: AuditConfig,
    predictions: AnyPredictionSet,
    threshold: AuditThreshold,
) -> Evaluation:
    """Store the checked predictions with a ``running`` evaluation and queue the job that reports on them."""
    evaluation = Evaluation(
        id=new_id("evl"),
        organisation_id=principal.organisation_id,
        kind="audit",
        name=config.name,
        status="running",
        config={
            "audit": config.model_dump(mode="json"),
            "threshold_source": threshold.source,
            "threshold_rule": threshold.record,
        },
        metric_definition_version=METRIC_DEFINITION_VERSION,
        report=None,
    )
    session.add(evaluation)
    session.flush()
    on_rollback(session, lambda: remove_evaluation_files(settings, evaluation.id))
    save_predictions(evaluation_dir(settings, evaluation.id), predictions)
    job = state.enqueue(
        session,
        organisation_id=principal.organisation_id,
        kind="audit",
        config={"evaluation_id": evaluation.id},
        max_attempts=settings.max_attempts,
    )
    evaluation.job_id = job.id
    return evaluation


def compare(session: Session, settings: Settings, organisation_id: str, request: CompareRequest) -> dict[str, Any]:
    if len(set(request.evaluation_ids)) != len(request.evaluation_ids):
        raise InputError("evaluation_ids lists an evaluation twice")
    evaluations = [EVALUATIONS.get_or_404(session, organisation_id, i) for i in request.evaluation_ids]
    for evaluation in evaluations:
        require_report(evaluation)
    try:
        result = pair_evaluations(settings, evaluations, n_boot=request.n_boot, seed=request.seed)
    except NoSharedAttribute as exc:
        raise InputError(str(exc)) from None
    except ValueError as exc:
        raise InputError(f"these evaluations cannot be paired: {exc}") from None
    return {
        "evaluations": [
            {
                "id": e.id,
                "name": e.name,
                "model_version_id": e.model_version_id,
                "cohort_id": e.cohort_id,
                "split": e.split,
            }
            for e in evaluations
        ],
        **result,
    }


def _check_report_intersections(request: ExternalEvaluationRequest, cohort: Cohort, model: ModelVersion) -> None:
    """Each requested intersection names the cohort's attributes, its groupings' or the model's."""
    derived = parse_groupings(cohort.config.get("groupings")) + parse_groupings(model.config.get("groupings"))
    known = [*cohort.attributes, *(g.name for g in derived)]
    problems = [
        {"field": f"report_intersections.{i}", "message": f"names {names}; the attributes are: {', '.join(known)}"}
        for i, names in enumerate(request.report_intersections or [])
        if len(set(names)) != len(names) or not set(names) <= set(known)
    ]
    if problems:
        raise InputError("report_intersections do not fit the cohort", problems)


class NoSharedAttribute(ValueError):
    pass


def pair_evaluations(
    settings: Settings,
    evaluations: Sequence[Evaluation],
    *,
    n_boot: int,
    seed: int,
    attributes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The paired comparison (``compare_models``) of the evaluations' stored predictions, each against
    the first, over ``attributes`` (default: the first's) that all of them carry. ``ValueError`` when
    they cannot be paired (``NoSharedAttribute``, no common samples, different labels)."""
    predictions = {e.id: load_predictions(evaluation_dir(settings, e.id)) for e in evaluations}
    check_same_task(predictions, "evaluation")
    shared = set.intersection(*(set(p.groups) for p in predictions.values()))
    wanted = evaluations[0].config.get("attributes", []) if attributes is None else attributes
    present = [a for a in wanted if a in shared]
    if not present:
        raise NoSharedAttribute("the evaluations share no sensitive attribute to compare")
    return compare_models(predictions, attributes=present, n_boot=n_boot, seed=seed, min_count=settings.min_group_count)


def start_external_evaluation(
    session: Session,
    settings: Settings,
    principal: Principal,
    model_ref: str,
    request: ExternalEvaluationRequest,
) -> Job:
    """``model_ref`` is a model version id or an alias, resolved by the registry like every model lookup."""
    model, _ = registry.resolve(session, principal.organisation_id, model_ref)
    cohort = cohorts.require_ready(session, principal.organisation_id, request.cohort_id)
    size = int(model.config.get("image_size") or 0)
    if size and size != cohort.image_size:
        raise InputError(
            f"model {model.id} takes {size} px images; cohort {cohort.id} was ingested at {cohort.image_size} px",
            [{"field": "cohort_id", "message": "image size differs"}],
        )
    _check_report_intersections(request, cohort, model)
    return state.enqueue(
        session,
        organisation_id=principal.organisation_id,
        kind="evaluate",
        config={
            "model_version_id": model.id,
            "cohort_id": cohort.id,
            "split": request.split,
            "report_intersections": request.report_intersections,
        },
        cohort_id=cohort.id,
        method=model.method,
        max_attempts=settings.max_attempts,
    )
