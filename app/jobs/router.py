"""Job endpoints: list, inspect, stream progress, cancel. (Training jobs are started at POST /v1/jobs.)"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from app.core.auth_route import AuthenticatedRoute
from app.core.deps import Reader, ReadSessionDep, SessionDep, SettingsDep, Writer, mark_resource
from app.core.pagination import paginate
from app.jobs import repository, state
from app.jobs.events import job_event_stream
from app.jobs.models import Job
from app.jobs.schemas import JobList, JobOut
from app.training_jobs.schemas import TrainingJobCreate
from app.training_jobs.service import start_training

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=AuthenticatedRoute)


@router.get("", response_model=JobList)
def list_jobs(
    principal: Reader,
    session: ReadSessionDep,
    status: str | None = None,
    cohort_id: str | None = None,
    method: str | None = None,
    kind: str | None = None,
    limit: int = Query(50),
    cursor: str | None = None,
) -> JobList:
    query = repository.jobs_query(
        principal.organisation_id, status=status, cohort_id=cohort_id, method=method, kind=kind
    )
    rows, next_cursor = paginate(session, query, Job, limit, cursor)
    return JobList(items=[JobOut.of(j) for j in rows], next_cursor=next_cursor)


@router.post("", status_code=202, response_model=JobOut)
def start_training_job(
    body: TrainingJobCreate, principal: Writer, session: SessionDep, settings: SettingsDep, request: Request
) -> JobOut:
    """Validate the training config against the cohort (every problem named at once), then queue it."""
    job = start_training(session, settings, principal, body)
    mark_resource(request, job.id)
    return JobOut.of(job)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, principal: Reader, session: ReadSessionDep) -> JobOut:
    return JobOut.of(repository.get_job(session, principal.organisation_id, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=202)
def cancel_job(job_id: str, principal: Writer, session: SessionDep, request: Request) -> JobOut:
    mark_resource(request, job_id)
    job = repository.get_job(session, principal.organisation_id, job_id)
    return JobOut.of(state.request_cancel(session, job))


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def job_events(
    job_id: str, principal: Reader, session: ReadSessionDep, settings: SettingsDep, request: Request
) -> EventSourceResponse:
    """Server-sent events: every state change and progress report, then a final ``end`` event. A client
    that reconnects with ``Last-Event-ID`` resumes after that event; a comment is sent every
    ``event_ping_seconds`` (15 by default) so that proxies keep an idle stream open."""
    repository.get_job(session, principal.organisation_id, job_id)  # 404 before the stream starts
    resume_from = request.headers.get("last-event-id", "0")
    after = int(resume_from) if resume_from.isdigit() else 0
    stream = job_event_stream(request.app.state.read_session_factory, principal.organisation_id, job_id, after)
    return EventSourceResponse(stream, ping=settings.event_ping_seconds)
