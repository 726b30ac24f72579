"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL.

PostgreSQL: a throw-away database is created on the server named by FAIRAUDIT_TEST_PG_URL
(default: the local server, trust auth) for the test session, migrated once, and its tables are
emptied after each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from support import PG_SERVER_URL, Keys, throwaway_pg_database

from app.db.base import Base
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_to_head
from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    admin = create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database_url(pg_admin: Engine) -> Iterator[str]:
    with throwaway_pg_database(pg_admin) as (_, url):
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fairaudit.db'}"
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_database_url")
    yield url
    engine = make_engine(url)
    _empty_tables(engine)
    engine.dispose()


def _empty_tables(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_dir=tmp_path / "data",
        model_dir=tmp_path / "models",
        heartbeat_seconds=0.2,
        stale_after_seconds=5.0,
        cancel_grace_seconds=2.0,
        ingest_workers=2,
        bootstrap_resamples=200,
    )


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app over real HTTP semantics (httpx transport), with its real database; no supervisor,
    so tests decide when jobs run (see ``run_jobs``)."""
    with TestClient(create_app(settings, run_supervisor=False)) as test_client:
        yield test_client


@pytest.fixture
def keys(session_factory: sessionmaker[Session]) -> Keys:
    return Keys(session_factory)


def run_jobs_until_idle(settings: Settings, factory: sessionmaker[Session], timeout: float = 120.0) -> None:
    """Run queued jobs with a real supervisor (real child processes) until none is queued or running."""
    import time

    from sqlalchemy import func, select

    from app.jobs.models import Job
    from app.jobs.supervisor import Supervisor

    supervisor = Supervisor(settings, factory)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            supervisor.tick()
            with factory() as session:
                active = session.scalar(select(func.count()).where(Job.status.in_(["queued", "running"])))
            if not active:
                return
            time.sleep(0.2)
        raise TimeoutError("jobs still active after the timeout")
    finally:
        supervisor.stop()


@pytest.fixture
def run_jobs(settings: Settings, session_factory: sessionmaker[Session]):
    return lambda timeout=120.0: run_jobs_until_idle(settings, session_factory, timeout)
