"""The server-sent event stream of one job, read from its event log.

Each poll is a short read-only session of its own (``app.db.engine.make_read_session_factory``): on
SQLite the stream never takes, nor waits for, the database's single write lock, which the job process
writing these events and every other request need. (It once held a write transaction for its whole
life and polled in another, which waited for the first: no event was sent and every other request
stalled until SQLite's busy timeout.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.jobs import repository
from app.jobs.models import TERMINAL_STATUSES

EVENT_POLL_SECONDS = 0.5

Polled = tuple[str | None, list[tuple[int, str, str]]]


async def job_event_stream(
    factory: sessionmaker[Session], organisation_id: str, job_id: str, after: int
) -> AsyncIterator[ServerSentEvent]:
    """Events with ids above ``after``, as they are written; ends with an ``end`` event once the job
    is finished (or gone)."""
    while True:
        status, events = await run_in_threadpool(_poll, factory, organisation_id, job_id, after)
        for event_id, type_, data in events:
            after = event_id
            yield ServerSentEvent(data=data, event=type_, id=str(event_id))
        if status is None or status in TERMINAL_STATUSES:
            yield ServerSentEvent(data=json.dumps({"status": status or "deleted"}), event="end")
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)


def _poll(factory: sessionmaker[Session], organisation_id: str, job_id: str, after: int) -> Polled:
    """The job's status, then its events after ``after``. Status first: a job's final event is committed
    with its final status, so once that status is seen its events are too (PostgreSQL reads each
    statement at its own snapshot; the other order could end the stream before its last events)."""
    with factory() as session:
        job = repository.JOBS.find(session, organisation_id, job_id)
        status = job.status if job is not None else None
        events = [
            (e.id, e.type, json.dumps(e.data, default=str)) for e in repository.events_after(session, job_id, after)
        ]
    return status, events
