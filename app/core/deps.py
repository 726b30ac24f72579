"""Request-scoped dependencies: the database sessions (the write session commits at the end) and the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth.roles import Permission
from app.auth.service import Principal
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


# Declares the bearer scheme in the OpenAPI document (so /docs can authorise) and nothing else: with
# auto_error off it never refuses a call; AuthenticatedRoute has already checked the key.
bearer_scheme = HTTPBearer(
    scheme_name="APIKey",
    bearerFormat="fa_<prefix>_<secret>",
    description="An API key of your organisation (`fairaudit keys create`, or POST /v1/keys as admin).",
    auto_error=False,
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def require(permission: Permission | None) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller, who must hold ``permission`` (``None``: any valid key will do).

    The check itself is made by ``app.core.auth_route.AuthenticatedRoute`` from the request's headers
    before the body is read (it finds ``permission`` on this dependency); this only hands its result on.
    Its ``bearer_scheme`` sub-dependency is what marks the route as keyed in the OpenAPI document.
    """

    async def dependency(request: Request, _: BearerCredentials) -> Principal:  # no I/O: no threadpool hop
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None or (permission is not None and not principal.can(permission)):
            raise RuntimeError(f"{request.url.path} needs a key ({permission}) but its route did not authenticate")
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


Authenticated = Annotated[Principal, Depends(require(None))]  # any valid key, whatever its role
Reader = Annotated[Principal, Depends(require(Permission.read))]
Writer = Annotated[Principal, Depends(require(Permission.write))]
Predictor = Annotated[Principal, Depends(require(Permission.predict))]
KeyManager = Annotated[Principal, Depends(require(Permission.manage_keys))]


def mark_resource(request: Request, resource_id: str) -> None:
    """Name the resource a state-changing call acted on, for its audit-log row."""
    request.state.audit_resource_id = resource_id
