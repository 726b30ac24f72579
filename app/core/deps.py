"""Request-scoped dependencies: the database sessions (the write session commits at the end) and the settings.

The caller (``Reader``, ``Writer``, …) is in ``app.auth.deps``: core names no domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db.engine import run_rollback_hooks
from app.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. It commits when the endpoint returns normally and rolls back on
    any exception, so services and repositories never commit and a failed call leaves nothing.

    Services that create files register their removal with ``app.db.engine.on_rollback``: files and rows then
    appear together or not at all.
    """
    with request.app.state.session_factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            run_rollback_hooks(session)
            raise


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only session (``app.db.engine.make_read_session_factory``) for GET routes: on SQLite it
    begins DEFERRED, so a read neither waits for nor holds the database's single write lock."""
    with request.app.state.read_session_factory() as session:
        yield session


async def get_settings_dep(request: Request) -> Settings:  # async: no threadpool hop for an attribute
    settings: Settings = request.app.state.settings
    return settings


# scope="function": FastAPI ends these before the response is sent (its default for a dependency with
# yield is after), so a success is answered only once its transaction has committed, a failed commit
# answers an error, and no session (nor, on SQLite, the write lock) stays open while a response streams.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def mark_resource(request: Request, resource_id: str, detail: dict[str, Any] | None = None) -> None:
    """Name the resource a state-changing call acted on, and what the audit-log row should say about
    it beyond the call itself (e.g. a policy's new version, an override's reason)."""
    request.state.audit_resource_id = resource_id
    if detail is not None:
        request.state.audit_detail = detail
