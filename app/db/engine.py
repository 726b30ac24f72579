"""Engine and session factory for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "fairaudit_read_only"  # execution option of ``read_only(engine)``
_QUERY_ONLY = "fairaudit_query_only"  # whether SQLite's query_only pragma is on for a pooled connection


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """Create an engine; SQLite gets WAL, enforced foreign keys and a busy timeout.

    WAL lets the API read while a job process writes progress; the busy timeout makes concurrent
    writers (API, supervisor, job children) wait instead of failing with "database is locked".
    ``pool_size`` connections stay open: past it, each checkout opens (and its return closes) a new
    connection, which costs far more than the statements a short request runs on it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, pool_size=pool_size)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size)


def _sqlite_begin(conn: Connection) -> None:
    """pysqlite's own transaction handling defers BEGIN; emit it ourselves so that a read-then-write
    transaction takes the write lock up front (no lock-upgrade deadlocks). Read-only connections
    (``read_only``) begin DEFERRED instead: under WAL they read the last commit without waiting for,
    or holding, that lock; and with ``query_only`` on, so that a statement that would write fails
    there and then (a DEFERRED transaction would otherwise take the lock and write, and the read
    session, which never commits, would drop the change without a word)."""
    read = bool(conn.get_execution_options().get(READ_ONLY))
    pooled = conn.connection  # one DB-API connection of the pool the read and write engines share
    if pooled.info.get(_QUERY_ONLY, False) != read:  # switched only when the use changes
        cursor = pooled.cursor()  # the driver's own cursor: a tenth of exec_driver_sql's cost here
        cursor.execute(f"PRAGMA query_only = {int(read)}")
        cursor.close()
        pooled.info[_QUERY_ONLY] = read
    conn.exec_driver_sql("BEGIN DEFERRED" if read else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by the "begin" listener
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only(engine: Engine) -> Engine:
    """The same engine and pool, for reads only: on SQLite every other transaction takes the single
    write lock at BEGIN, so a lookup done there queues behind every concurrent writer; these begin
    DEFERRED and never do. The database itself refuses writes in them: SQLite's ``query_only`` (see
    ``_sqlite_begin``), PostgreSQL's ``BEGIN READ ONLY`` (psycopg sends it in the same statement, and
    the pool resets the connection when it is returned)."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions over ``read_only(engine)`` (model lookups on the prediction path). A flush in one is a
    bug, and raises rather than upgrading the lock."""
    factory = sessionmaker(read_only(engine), expire_on_commit=False, autoflush=False)
    event.listen(factory, "before_flush", _refuse_flush)
    return factory


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read-only session was asked to write; use the request's session or a transaction")


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work outside a request (CLI, supervisor, job process): commit or roll back."""
    with factory() as session:
        try:
            with session.begin():
                yield session
        except BaseException:
            run_rollback_hooks(session)
            raise


_ROLLBACK_HOOKS = "fairaudit_on_rollback"


def on_rollback(session: Session, undo: Callable[[], None]) -> None:
    """Run ``undo`` if this transaction is rolled back, e.g. remove files written for it, so rows
    and files appear together or not at all."""
    session.info.setdefault(_ROLLBACK_HOOKS, []).append(undo)


def run_rollback_hooks(session: Session) -> None:
    for undo in reversed(session.info.pop(_ROLLBACK_HOOKS, [])):
        undo()
