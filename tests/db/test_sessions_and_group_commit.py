"""Read-only sessions and the group-commit writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.audit.models import AuditLogEntry
from app.auth.models import Organisation
from app.auth.service import ensure_organisation
from app.db.base import utcnow
from app.db.engine import make_engine, make_read_session_factory, make_session_factory, transaction
from app.db.group_commit import GroupCommitWriter
from app.serving.models import Prediction


def audit_row(path: str) -> dict[str, object]:
    return {"created_at": utcnow(), "method": "POST", "path": path, "action": f"POST {path}", "status_code": 200}


def paths(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(AuditLogEntry.path)))


def test_read_only_session_does_not_wait_for_a_writer(database_url: str) -> None:
    """A lookup in a read-only session answers while another connection holds an open write
    transaction (on SQLite a read in an ordinary session would wait for its commit: BEGIN IMMEDIATE)."""
    engine = make_engine(database_url)
    factory, read = make_session_factory(engine), make_read_session_factory(engine)
    with transaction(factory) as session:
        ensure_organisation(session, "existing")
    writer_holds_lock, release = threading.Event(), threading.Event()

    def hold_write_transaction() -> None:
        with transaction(factory) as session:
            session.add(Organisation(name="uncommitted"))
            session.flush()
            writer_holds_lock.set()
            release.wait(10)

    holder = threading.Thread(target=hold_write_transaction)
    holder.start()
    try:
        assert writer_holds_lock.wait(10)
        with read() as session:
            if engine.dialect.name == "sqlite":  # waiting for the lock would now fail at once, not after 30 s
                session.execute(text("PRAGMA busy_timeout = 0"))
            names = sorted(session.scalars(select(Organisation.name)))
        assert names == ["existing"]  # the last commit, not the writer's uncommitted row
    finally:
        release.set()
        holder.join()
        engine.dispose()


def test_read_only_session_refuses_to_write(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with make_read_session_factory(engine)() as session:
            session.add(Organisation(name="sneaky"))
            with pytest.raises(RuntimeError, match="read-only session"):
                session.flush()
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Organisation)) == 0
    finally:
        engine.dispose()


def test_the_database_refuses_writes_on_read_only_connections(database_url: str) -> None:
    """Not only ORM flushes: a Core statement that writes fails in the database itself (SQLite's
    query_only, PostgreSQL's READ ONLY transaction), where it used to be written and then silently
    dropped with the read session that never commits. The pooled connection writes normally again
    when a write transaction takes it next (one connection in the pool: the same one)."""
    engine = make_engine(database_url, pool_size=1)
    row = {"id": "org_sneaky", "name": "sneaky", "created_at": utcnow()}
    try:
        for attempt in range(2):  # the second time on a connection the write transaction just used
            with make_read_session_factory(engine)() as session, pytest.raises(DBAPIError, match=r"read-?only"):
                session.execute(insert(Organisation), [row])
            with transaction(make_session_factory(engine)) as session:
                session.execute(insert(Organisation), [{**row, "id": f"org_{attempt}", "name": f"kept {attempt}"}])
        with make_read_session_factory(engine)() as session:
            assert sorted(session.scalars(select(Organisation.name))) == ["kept 0", "kept 1"]
    finally:
        engine.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[sessionmaker[Session], GroupCommitWriter]]:
    """A session factory and a group-commit writer over one engine (closed, then disposed, after the test)."""
    engine = make_engine(database_url, pool_size=4)
    writer = GroupCommitWriter(engine)
    yield make_session_factory(engine), writer
    writer.close()
    engine.dispose()


def test_group_commit_writes_concurrent_submissions(store) -> None:
    factory, writer = store

    def submit(i: int):  # every third row also names a resource: rows of two column sets in one batch
        row = audit_row(f"/r{i:03d}") | ({"resource_id": f"res{i}"} if i % 3 == 0 else {})
        return writer.submit(AuditLogEntry, [row])

    with ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(submit, range(200)))
    for future in futures:
        future.result(timeout=30)
    assert paths(factory) == [f"/r{i:03d}" for i in range(200)]
    with factory() as session:
        named = session.scalars(select(AuditLogEntry.resource_id).where(AuditLogEntry.resource_id.is_not(None)))
        assert sorted(named) == sorted(f"res{i}" for i in range(0, 200, 3))


def test_a_bad_submission_fails_alone(store) -> None:
    """A row that violates a constraint fails its own submission; the others queued with it are stored."""
    factory, writer = store
    gate, batch_sizes = threading.Event(), []
    original_commit = writer._commit

    def commit_after_gate(batch):  # hold the thread so that later submissions queue up together
        gate.wait(10)
        batch_sizes.append(len(batch))
        original_commit(batch)

    writer._commit = commit_after_gate  # type: ignore[method-assign]
    blocker = writer.submit(AuditLogEntry, [audit_row("/first")])
    time.sleep(0.2)  # the thread has taken "/first" and waits at the gate
    good_a = writer.submit(AuditLogEntry, [audit_row("/a")])
    orphan = {
        "id": "prd_orphan",
        "created_at": utcnow(),
        "organisation_id": "org_missing",
        "model_version_id": "mdl_missing",
        "probability": 0.5,
        "label": 1,
        "exit_index": 0,
        "confidence": 0.5,
        "demographics": None,
    }
    bad = writer.submit(Prediction, [orphan])
    good_b = writer.submit(AuditLogEntry, [audit_row("/b")])
    gate.set()
    blocker.result(timeout=30)
    good_a.result(timeout=30)
    good_b.result(timeout=30)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        bad.result(timeout=30)
    assert paths(factory) == ["/a", "/b", "/first"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0
    assert batch_sizes == [1, 3, 1, 1, 1]  # the shared batch failed and was retried one by one


def test_a_malformed_submission_is_refused_and_the_writer_goes_on(store) -> None:
    factory, writer = store
    with pytest.raises(ValueError, match=r"audit_log has no column\(s\) \['nonexistent'\]"):
        writer.submit(AuditLogEntry, [{**audit_row("/x"), "nonexistent": 1}])
    no_status = {"created_at": utcnow(), "method": "POST", "path": "/y", "action": "POST /y"}
    with pytest.raises(Exception, match=r"(?i)not null|null value"):
        writer.submit(AuditLogEntry, [no_status]).result(timeout=30)
    writer.submit(AuditLogEntry, [audit_row("/after")]).result(timeout=30)
    assert paths(factory) == ["/after"]


def test_updates_ride_along_with_inserts(store) -> None:
    """``submit_update`` finds each row by its key column; updates and inserts of one batch commit together."""
    factory, writer = store
    with pytest.raises(ValueError, match=r"audit_log has no column 'nonexistent'"):
        writer.submit_update(AuditLogEntry, "nonexistent", [{"path": "/a"}])
    with pytest.raises(ValueError, match=r"audit_log has no column\(s\) \['nonexistent'\]"):
        writer.submit_update(AuditLogEntry, "path", [{"path": "/a", "nonexistent": 1}])
    writer.submit(AuditLogEntry, [audit_row("/a"), audit_row("/b")]).result(timeout=30)
    pending = [
        writer.submit_update(
            AuditLogEntry, "path", [{"path": "/a", "status_code": 500}, {"path": "/b", "action": "b"}]
        ),
        writer.submit(AuditLogEntry, [audit_row("/c")]),
    ]
    for future in pending:
        future.result(timeout=30)
    with factory() as session:
        rows = session.execute(select(AuditLogEntry.path, AuditLogEntry.action, AuditLogEntry.status_code))
        assert sorted(rows) == [("/a", "POST /a", 500), ("/b", "b", 200), ("/c", "POST /c", 200)]


def test_close_writes_what_was_queued_then_refuses(store) -> None:
    factory, writer = store
    futures = [writer.submit(AuditLogEntry, [audit_row(f"/q{i}")]) for i in range(20)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(paths(factory)) == 20
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(AuditLogEntry, [audit_row("/late")])
