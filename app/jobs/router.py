"""Job endpoints: list, inspect, stream progress, cancel, whatever the kind of job. (Each domain starts its
own kind: training jobs at POST /v1/jobs, ``app.training_jobs.router``.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from app.auth.deps import Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit
from app.jobs import state
from app.jobs.events import job_event_stream
from app.jobs.repository import JOBS
from app.jobs.schemas import JobList, JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=AuthenticatedRoute)


@router.get("", response_model=JobList, summary="List jobs")
def list_jobs(
    principal: Reader,
    session: ReadSessionDep,
    status: str | None = None,
    cohort_id: str | None = None,
    method: str | None = None,
    kind: str | None = None,
    study_id: Annotated[
        str | None, Query(max_length=64, description="a study's jobs: its children and its completion job")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JobList:
    rows, next_cursor = JOBS.page(
        session,
        principal.organisation_id,
        limit,
        cursor,
        status=status,
        cohort_id=cohort_id,
        method=method,
        kind=kind,
        study_id=study_id,
    )
    return JobList(items=[JobOut.of(j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=problem_responses(404))
def get_job(job_id: str, principal: Reader, session: ReadSessionDep) -> JobOut:
    return JobOut.of(JOBS.get_or_404(session, principal.organisation_id, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    status_code=202,
    summary="Cancel a job",
    responses=problem_responses(404, 409, notes={409: "the job has already ended"}),
)
def cancel_job(job_id: str, principal: Writer, session: SessionDep, request: Request) -> JobOut:
    mark_resource(request, job_id)
    job = JOBS.get_or_404(session, principal.organisation_id, job_id)
    return JobOut.of(state.request_cancel(session, job))


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a job (server-sent events)",
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(404)},
)
def job_events(
    job_id: str, principal: Reader, session: ReadSessionDep, settings: SettingsDep, request: Request
) -> EventSourceResponse:
    """Server-sent events: every state change and progress report, then a final ``end`` event. A client
    that reconnects with ``Last-Event-ID`` resumes after that event; a comment is sent every
    ``event_ping_seconds`` (15 by default) so that proxies keep an idle stream open."""
    JOBS.get_or_404(session, principal.organisation_id, job_id)  # 404 before the stream starts
    resume_from = request.headers.get("last-event-id", "0")
    after = int(resume_from) if resume_from.isdigit() else 0
    stream = job_event_stream(request.app.state.read_session_factory, principal.organisation_id, job_id, after)
    return EventSourceResponse(stream, ping=settings.event_ping_seconds)
