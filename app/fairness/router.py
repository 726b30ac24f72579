"""Evaluation endpoints: reports (JSON, HTML, model card), audits of external predictions,
comparisons, and external validation of a model version on another cohort."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, StreamingResponse

from app.auth.deps import Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.errors import ConflictError
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit, paginate_in_order
from app.fairness import service
from app.fairness.model_card import ModelCard, model_card
from app.fairness.models import MetricRow
from app.fairness.report_html import render_html
from app.fairness.report_schema import Comparison
from app.fairness.repository import EVALUATIONS, metric_rows_query
from app.fairness.schemas import (
    CompareRequest,
    EvaluationList,
    EvaluationOut,
    EvaluationSummary,
    ExternalEvaluationRequest,
    MetricRowList,
    MetricRowOut,
)
from app.jobs.schemas import JobOut
from app.serving import registry
from app.serving.models import ModelVersion
from app.serving.registry import MODEL_REF

router = APIRouter(tags=["evaluations"], route_class=AuthenticatedRoute)
NO_REPORT = {409: "the evaluation has no report yet"}
AUDIT_CONFIG_EXAMPLES = [
    '{"name": "triage model, 2026 Q3", "sensitive_attributes": ["sex", "age_group"], "threshold": 0.5}',
    '{"name": "vendor scores", "sensitive_attributes": ["site"], "threshold_rule": "youden"}',
    '{"name": "derm vendor", "task": "multiclass", "sensitive_attributes": ["skin_type"]}',
    '{"name": "cxr vendor", "task": "multilabel", "sensitive_attributes": ["sex"], "threshold_rule": "youden"}',
]


@router.get("/v1/evaluations", response_model=EvaluationList, summary="List evaluations")
def list_evaluations(
    principal: Reader,
    session: ReadSessionDep,
    model_version_id: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> EvaluationList:
    rows, next_cursor = EVALUATIONS.page(
        session, principal.organisation_id, limit, cursor, model_version_id=model_version_id or None
    )
    return EvaluationList(items=[EvaluationSummary.of(e) for e in rows], next_cursor=next_cursor)


@router.get(
    "/v1/evaluations/{evaluation_id}",
    response_model=EvaluationOut,
    summary="Get an evaluation and its fairness report",
    responses=problem_responses(404),
)
def get_evaluation(evaluation_id: str, principal: Reader, session: ReadSessionDep) -> EvaluationOut:
    return service.represent(session, EVALUATIONS.get_or_404(session, principal.organisation_id, evaluation_id))


@router.get(
    "/v1/evaluations/{evaluation_id}/metrics",
    response_model=MetricRowList,
    summary="List an evaluation's stored metric rows",
    responses=problem_responses(404, 409, notes={409: "the evaluation has no report yet"}),
)
def evaluation_metrics(
    evaluation_id: str,
    principal: Reader,
    session: ReadSessionDep,
    attribute: Annotated[str | None, Query(description="'overall', an attribute or 'a×b'")] = None,
    group: Annotated[str | None, Query(description="a group label, or '*'")] = None,
    exit: Annotated[str | None, Query(description="'0' … 'k' or 'policy'")] = None,
    metric: Annotated[str | None, Query(description="e.g. auc, tpr, pfd, p_holm.tpr")] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> MetricRowList:
    """The evaluation's report as flat rows, one per attribute × group × exit × metric, in report
    order; each filter keeps the rows equal to it. Pages follow ``next_cursor``."""
    evaluation = EVALUATIONS.get_or_404(session, principal.organisation_id, evaluation_id)
    service.require_report(evaluation)
    filters = {"attribute": attribute, "group": group, "exit": exit, "metric": metric}
    rows, next_cursor = paginate_in_order(
        session, metric_rows_query(evaluation.id, **filters), MetricRow.id, limit, cursor
    )
    return MetricRowList(items=[MetricRowOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/v1/evaluations/{evaluation_id}/predictions.csv",
    response_class=StreamingResponse,
    summary="Download an evaluation's per-sample predictions as CSV",
    responses={
        200: {"content": {"text/csv": {}}, "description": "one row per sample, streamed"},
        **problem_responses(404, 409, notes={409: "the evaluation has no stored predictions"}),
    },
)
def evaluation_predictions(
    evaluation_id: str, principal: Reader, session: ReadSessionDep, settings: SettingsDep
) -> StreamingResponse:
    """Every sample the evaluation scored: sample id, patient hash, groups, label, the score at every exit,
    the exit taken and the served score (and seed and fold for pooled out-of-fold predictions), streamed
    from the stored predictions (column meanings: docs/api.md)."""
    table = service.predictions_csv(session, settings, principal.organisation_id, evaluation_id)
    headers = {"Content-Disposition": f'attachment; filename="{evaluation_id}-predictions.csv"'}
    return StreamingResponse(iter(table), media_type="text/csv", headers=headers)


@router.get(
    "/v1/evaluations/{evaluation_id}/report",
    response_class=HTMLResponse,
    summary="The fairness report as an HTML page",
    responses=problem_responses(404, 409, notes=NO_REPORT),
)
def evaluation_report(evaluation_id: str, principal: Reader, session: ReadSessionDep) -> HTMLResponse:
    """A self-contained HTML page (no scripts or fonts fetched from anywhere): verdict first, then
    per-group tables with intervals, ROC and calibration curves, TPR/FPR bars, exit rates."""
    stored = EVALUATIONS.get_or_404(session, principal.organisation_id, evaluation_id)
    evaluation = service.represent(session, stored)
    if evaluation.report is None:
        raise ConflictError(f"evaluation {evaluation_id} has no report yet ({evaluation.status})")
    return HTMLResponse(
        render_html(
            evaluation.report,
            title=f"Fairness audit: {evaluation.name}",
            metadata=service.report_metadata(session, evaluation),
            threshold_rule=service.threshold_record_of(session, stored),
            related=service.related_pages(session, stored),
            finding_threshold_rules=service.finding_threshold_records_of(session, stored),
        )
    )


@router.get(
    "/v1/evaluations/{evaluation_id}/model-card",
    response_model=ModelCard,
    summary="The evaluation as a model card",
    responses=problem_responses(404, 409, notes=NO_REPORT),
)
def evaluation_model_card(evaluation_id: str, principal: Reader, session: ReadSessionDep) -> ModelCard:
    """The evaluation as a Model Card Toolkit JSON document, intervals included."""
    evaluation = EVALUATIONS.get_or_404(session, principal.organisation_id, evaluation_id)
    service.require_report(evaluation)
    model = session.get(ModelVersion, evaluation.model_version_id) if evaluation.model_version_id else None
    promotions = registry.promotions_of(session, principal.organisation_id, model.id) if model else []
    return model_card(evaluation, model, promotions, study_id=service.study_of(evaluation, model))


@router.post(
    "/v1/audits",
    status_code=201,
    response_model=EvaluationOut,
    summary="Audit predictions made elsewhere",
    responses={202: {"model": EvaluationOut, "description": "large file: the report is computed by an audit job"}},
)
def create_audit(
    request: Request,
    response: Response,
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
    predictions: Annotated[
        UploadFile,
        File(
            description="CSV: y_true, y_score (binary); y_true and score_<class> per class (multiclass); "
            "y_true_<finding> and score_<finding> per finding (multilabel); attribute columns, optional sample_id"
        ),
    ],
    config: Annotated[
        str,
        Form(
            description="JSON: name, task (binary, multiclass, multilabel), sensitive_attributes, and the "
            "decision: threshold or threshold_rule; class_thresholds; finding_thresholds",
            examples=AUDIT_CONFIG_EXAMPLES,
        ),
    ],
) -> EvaluationOut:
    """The file is streamed and checked now (4xx naming every bad cell). Up to ``audit_sync_max_rows``
    rows (default 20,000) the report is computed in the request: 201, evaluation ``ready``. A larger
    file answers 202 with the evaluation ``running`` and its ``job_id``: an audit job computes the
    report (follow the job, or read the evaluation until it is ``ready`` or ``failed``)."""
    evaluation = service.create_audit(session, settings, principal, predictions.file, config)
    mark_resource(request, evaluation.id)
    if evaluation.status == "running":
        response.status_code = 202
    return service.represent(session, evaluation)


@router.post(
    "/v1/compare",
    response_model=Comparison,
    summary="Compare evaluations, paired",
    responses=problem_responses(404, 409, notes={409: "an evaluation has no report yet"}),
)
def compare(body: CompareRequest, principal: Reader, session: ReadSessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Differences of each headline metric against the first evaluation, with paired-bootstrap
    intervals and p-values (Holm-adjusted), on the samples the evaluations share. It stores nothing, so it
    reads on a read-only session: the bootstrap must not hold SQLite's write lock."""
    return service.compare(session, settings, principal.organisation_id, body)


@router.post(
    "/v1/models/{model_ref}/evaluate",
    status_code=202,
    response_model=JobOut,
    summary="Validate a model on another cohort",
    responses=problem_responses(404, 409, notes={409: "the cohort is not ready, or the model's job is still running"}),
)
def evaluate_model(
    model_ref: Annotated[str, Path(description=MODEL_REF)],
    body: ExternalEvaluationRequest,
    request: Request,
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
) -> JobOut:
    """External validation: run a model version on another (ready) cohort as an evaluation job."""
    job = service.start_external_evaluation(session, settings, principal, model_ref, body)
    mark_resource(request, job.id)
    return JobOut.of(job)
