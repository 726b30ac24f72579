"""Job endpoints: list, inspect, stream progress, cancel. (Training jobs are started at POST /v1/jobs.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.core.deps import Reader, SessionDep, SettingsDep, Writer, mark_resource
from app.core.pagination import paginate
from app.jobs import repository, state
from app.jobs.models import TERMINAL_STATUSES, Job
from app.jobs.schemas import JobList, JobOut
from app.training_jobs.schemas import TrainingJobCreate
from app.training_jobs.service import start_training

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_POLL_SECONDS = 0.5


@router.get("", response_model=JobList)
def list_jobs(
    principal: Reader,
    session: SessionDep,
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
def get_job(job_id: str, principal: Reader, session: SessionDep) -> JobOut:
    return JobOut.of(repository.get_job(session, principal.organisation_id, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=202)
def cancel_job(job_id: str, principal: Writer, session: SessionDep, request: Request) -> JobOut:
    mark_resource(request, job_id)
    job = repository.get_job(session, principal.organisation_id, job_id)
    return JobOut.of(state.request_cancel(session, job))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def job_events(job_id: str, principal: Reader, session: SessionDep, request: Request) -> StreamingResponse:
    """Server-sent events: every state change and progress report, then a final ``end`` event."""
    repository.get_job(session, principal.organisation_id, job_id)  # 404 before the stream starts
    factory = request.app.state.session_factory

    def poll(after: int) -> tuple[list[tuple[int, str, str]], str]:
        with factory() as s:
            events = [
                (e.id, e.type, json.dumps(e.data, default=str)) for e in repository.events_after(s, job_id, after)
            ]
            status = repository.get_job(s, principal.organisation_id, job_id).status
        return events, status

    resume_from = request.headers.get("last-event-id", "0")
    start = int(resume_from) if resume_from.isdigit() else 0  # a reconnecting client resumes where it was

    async def stream() -> AsyncIterator[str]:
        last = start
        while True:
            events, status = await run_in_threadpool(poll, last)
            for event_id, type_, data in events:
                last = event_id
                yield f"id: {event_id}\nevent: {type_}\ndata: {data}\n\n"
            if status in TERMINAL_STATUSES:
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
