"""The job event stream over a real socket (``fairaudit serve``): keep-alive comments arrive while a job is
quiet, a client that reconnects with ``Last-Event-ID`` gets only the later events, and events written
while it listens arrive, then the ``end`` event closes the stream."""

from __future__ import annotations

import json

import httpx
from job_helpers import finish, organisation_id, report, running_job
from live_server import live_server
from sqlalchemy import select

from app.jobs.models import JobEvent

QUIET = {"FAIRAUDIT_SUPERVISOR_ENABLED": "false", "FAIRAUDIT_EVENT_PING_SECONDS": "0.3"}
MAX_LINES = 500  # a stream that never ended would be a failure, not a hang
# pings come every 0.3 s: a 5 s silence means they did not (the default interval, 15 s, would time out)
TIMEOUT = httpx.Timeout(30, read=5)


def test_pings_while_quiet_and_resume_after_last_event_id(settings, keys, session_factory) -> None:
    headers = keys.headers()
    job_id = running_job(session_factory, organisation_id(session_factory))
    report(session_factory, job_id, epoch=1)
    with session_factory() as session:
        ids = session.scalars(select(JobEvent.id).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    assert len(ids) == 3  # state queued, state running, progress epoch 1

    received: list[dict[str, str]] = []
    pings, current, finished = 0, {}, False
    with live_server(settings, QUIET) as server:
        resume = {**headers, "Last-Event-ID": str(ids[0])}
        with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/events", headers=resume, timeout=TIMEOUT) as response:
            assert response.status_code == 200
            for n, line in enumerate(response.iter_lines()):
                assert n < MAX_LINES, "the stream did not end"
                if line.startswith(":"):
                    pings += 1
                elif line:
                    field, _, value = line.partition(": ")
                    current[field] = value
                elif current:
                    received.append(current)
                    current = {}
                if pings >= 2 and not finished:  # the job was quiet for two ping intervals: end it now
                    finish(session_factory, job_id)
                    finished = True

    assert [e["event"] for e in received] == ["state", "progress", "state", "end"]
    assert [int(e["id"]) for e in received[:2]] == ids[1:]  # nothing at or before Last-Event-ID
    assert json.loads(received[1]["data"]) == {"phase": "train", "epoch": 1}
    assert json.loads(received[2]["data"])["status"] == "succeeded"  # written while the client listened
    assert json.loads(received[3]["data"]) == {"status": "succeeded"}
