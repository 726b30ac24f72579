"""The job-kind registry: domains name their handlers; a supervisor runs only the kinds it knows, and a
fresh job process loads every table the launching process knows."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import pytest
from job_helpers import organisation_id

from app.db.base import Base
from app.db.engine import transaction
from app.jobs import handlers, state
from app.jobs.models import Job
from app.jobs.supervisor import Supervisor


def test_every_domain_registers_its_kinds_of_job():
    assert handlers.kinds() == {"ingest", "train", "evaluate", "audit", "study"}
    assert handlers.program("ingest").handler == "app.cohorts.ingestion_job:run_ingestion"
    assert set(handlers.duties()) == {"studies"}, "a study is settled by whichever supervisor ticks"


def test_a_kind_has_one_handler_named_module_colon_function():
    handlers.register("ingest", "app.cohorts.ingestion_job:run_ingestion")  # the same again is fine
    with pytest.raises(ValueError, match=re.escape("'ingest' is run by app.cohorts.ingestion_job:run_ingestion")):
        handlers.register("ingest", "app.elsewhere:run")
    with pytest.raises(ValueError, match="module:function"):
        handlers.register("mystery", "app.elsewhere.run")
    assert "mystery" not in handlers.kinds()


def test_a_supervisor_leaves_a_kind_it_cannot_run_to_others(keys, settings, session_factory):
    keys.headers()  # makes the organisation
    with transaction(session_factory) as session:
        job_id = state.enqueue(
            session, organisation_id=organisation_id(session_factory), kind="mystery", config={}, max_attempts=1
        ).id
    supervisor = Supervisor(settings, session_factory)
    try:
        supervisor.tick()
        assert supervisor._children == {}
    finally:
        supervisor.stop()
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "queued" and job.attempt == 0


LOAD_TABLES = """
import pickle, sys
from app.db.base import Base
pickle.loads(sys.stdin.buffer.read()).load_tables()
print(" ".join(sorted(Base.metadata.tables)))
"""


def test_a_fresh_job_process_loads_every_table_of_the_launching_process():
    """A foreign key is resolved at flush time, in a process that imported only the handler's domain."""
    program = handlers.program("audit")
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_TABLES], input=pickle.dumps(program), capture_output=True, timeout=120, check=True
    )
    assert loaded.stdout.decode().split() == sorted(Base.metadata.tables)
