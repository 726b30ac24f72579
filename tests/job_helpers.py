"""Jobs driven by the test itself acting as their worker (no job process), for tests about how jobs are
read (event streams, listings) rather than how they run."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import Organisation
from app.db.engine import transaction
from app.jobs import state

WORKER = "test-worker"


def organisation_id(factory: sessionmaker[Session], name: str = "St Elsewhere") -> str:
    """The id of an organisation made by ``Keys.headers`` (default: its default organisation)."""
    with factory() as session:
        found = session.scalar(select(Organisation.id).where(Organisation.name == name))
    assert found is not None, f"no organisation {name!r}: make a key for it first"
    return found


def running_job(factory: sessionmaker[Session], organisation: str) -> str:
    """A training job, queued then claimed by ``WORKER``: its events are ``state`` queued, ``state`` running."""
    with transaction(factory) as session:
        job_id = state.enqueue(session, organisation_id=organisation, kind="train", config={}, max_attempts=1).id
    with transaction(factory) as session:
        state.claim_next(session, WORKER)
    return job_id


def report(factory: sessionmaker[Session], job_id: str, epoch: int) -> None:
    with transaction(factory) as session:
        state.report_progress(session, job_id, WORKER, {"phase": "train", "epoch": epoch})


def finish(factory: sessionmaker[Session], job_id: str) -> None:
    with transaction(factory) as session:
        state.finish(session, job_id, WORKER, "succeeded", result={"ok": True})
