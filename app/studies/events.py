"""The server-sent event stream of a study's aggregate progress.

Like a job's stream (``app.jobs.events``), each poll is a short read-only session of its own, so the
stream never holds (nor waits for) SQLite's write lock. A study keeps no event log: a ``progress``
event is sent whenever the status, the progress or the children's statuses change, then ``end``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.studies.models import STUDY_TERMINAL
from app.studies.repository import STUDIES
from app.studies.service import represent

POLL_SECONDS = 0.5


async def study_event_stream(
    factory: sessionmaker[Session], organisation_id: str, study_id: str
) -> AsyncIterator[ServerSentEvent]:
    last: dict[str, Any] | None = None
    while True:
        snapshot = await run_in_threadpool(_poll, factory, organisation_id, study_id)
        if snapshot is not None and snapshot != last:
            last = snapshot
            yield ServerSentEvent(data=json.dumps(snapshot), event="progress")
        status = snapshot["status"] if snapshot is not None else None
        if status is None or status in STUDY_TERMINAL:
            yield ServerSentEvent(data=json.dumps({"status": status or "deleted"}), event="end")
            return
        await asyncio.sleep(POLL_SECONDS)


def _poll(factory: sessionmaker[Session], organisation_id: str, study_id: str) -> dict[str, Any] | None:
    with factory() as session:
        study = STUDIES.find(session, organisation_id, study_id)
        if study is None:
            return None
        out = represent(session, study)
    return {
        "status": out.status,
        "progress": round(out.progress, 4),
        "children": dict(Counter(child.status for child in out.children)),
        "error": out.error,
    }
