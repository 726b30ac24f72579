"""Request-scoped dependencies: the database session (commits at the end) and the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from app.auth.roles import Permission
from app.auth.service import Principal, authenticate
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


async def get_settings_dep(request: Request) -> Settings:  # async: no threadpool hop for an attribute
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _principal(request: Request) -> Principal:
    """The caller, looked up on a read-only connection of its own (``app.db.engine.read_only``), so the
    key check never waits for the database's write lock and the request's session begins only when the
    endpoint first uses it."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    with request.app.state.read_engine.connect() as conn:
        principal = authenticate(conn, token.strip())
    if principal is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller must hold ``permission``."""

    async def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:  # no I/O: no hop
        if not principal.can(permission):
            raise HTTPException(403, f"role {principal.role.value!r} may not {permission.value}")
        return principal

    return dependency


Authenticated = Annotated[Principal, Depends(_principal)]  # any valid key, whatever its role
Reader = Annotated[Principal, Depends(require(Permission.read))]
Writer = Annotated[Principal, Depends(require(Permission.write))]
Predictor = Annotated[Principal, Depends(require(Permission.predict))]
KeyManager = Annotated[Principal, Depends(require(Permission.manage_keys))]


def mark_resource(request: Request, resource_id: str) -> None:
    """Name the resource a state-changing call acted on, for its audit-log row."""
    request.state.audit_resource_id = resource_id
