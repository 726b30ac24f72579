"""Study endpoints: start, list, read (with the children's progress and, when done, the results),
follow, cancel. A study is not deleted: its children's model versions and evaluations outlive it,
and the study is their evidence."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sse_starlette import EventSourceResponse

from app.auth.deps import Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit
from app.studies import service
from app.studies.events import study_event_stream
from app.studies.repository import STUDIES
from app.studies.schemas import StudyCreate, StudyList, StudyOut, StudySummary

router = APIRouter(prefix="/v1/studies", tags=["studies"], route_class=AuthenticatedRoute)


@router.post(
    "",
    status_code=202,
    response_model=StudyOut,
    summary="Start a study",
    responses=problem_responses(404, 409, notes={409: "the cohort is not ready"}),
)
def start_study(
    body: StudyCreate, principal: Writer, session: SessionDep, settings: SettingsDep, request: Request
) -> StudyOut:
    """Check every config against the cohort and every fold (each problem named), then queue the
    folds × seeds × configs training jobs (and the final models) with the study, all or none."""
    study = service.create_study(session, settings, principal, body)
    mark_resource(request, study.id)
    return service.represent(session, study)


@router.get("", response_model=StudyList, summary="List studies")
def list_studies(
    principal: Reader,
    session: ReadSessionDep,
    status: str | None = None,
    cohort_id: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> StudyList:
    rows, next_cursor = STUDIES.page(
        session, principal.organisation_id, limit, cursor, status=status, cohort_id=cohort_id
    )
    return StudyList(items=[StudySummary.model_validate(s) for s in rows], next_cursor=next_cursor)


@router.get("/{study_id}", response_model=StudyOut, summary="Get a study", responses=problem_responses(404))
def get_study(study_id: str, principal: Reader, session: ReadSessionDep) -> StudyOut:
    return service.represent(session, STUDIES.get_or_404(session, principal.organisation_id, study_id))


@router.get(
    "/{study_id}/report",
    response_class=HTMLResponse,
    summary="The study's report as an HTML page",
    responses=problem_responses(404, 409, notes={409: "the study has not succeeded (the answer names its status)"}),
)
def study_report(study_id: str, principal: Reader, session: ReadSessionDep) -> HTMLResponse:
    """A self-contained HTML page (no scripts, nothing fetched): the setup, each config's verdicts and a
    forest plot of its paired differences with the reference, per-group PF/TPR/FPR with intervals and
    across-fold spread, exits and compute, the fold models' thresholds, links to the pooled evaluations
    and the final models. Every chart has a table of its numbers."""
    study = STUDIES.get_or_404(session, principal.organisation_id, study_id)
    return HTMLResponse(service.report_html(session, study))


@router.post(
    "/{study_id}/cancel",
    response_model=StudyOut,
    status_code=202,
    summary="Cancel a study and every job of it",
    responses=problem_responses(404, 409, notes={409: "the study has already ended"}),
)
def cancel_study(study_id: str, principal: Writer, session: SessionDep, request: Request) -> StudyOut:
    mark_resource(request, study_id)
    study = service.cancel_study(session, STUDIES.get_or_404(session, principal.organisation_id, study_id))
    return service.represent(session, study)


@router.get(
    "/{study_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a study (server-sent events)",
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(404)},
)
def study_events(
    study_id: str, principal: Reader, session: ReadSessionDep, settings: SettingsDep, request: Request
) -> EventSourceResponse:
    """A ``progress`` event (status, progress 0–1, children by status) whenever it changes, then ``end``."""
    STUDIES.get_or_404(session, principal.organisation_id, study_id)
    stream = study_event_stream(request.app.state.read_session_factory, principal.organisation_id, study_id)
    return EventSourceResponse(stream, ping=settings.event_ping_seconds)
