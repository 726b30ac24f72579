"""Authentication and authorisation from the headers, before any request body is read.

FastAPI reads (and for multipart, spools to disk) a declared body before it runs any dependency, so a
key checked in a dependency is checked too late: a keyless 1 GiB upload was received in full before its
401. ``AuthenticatedRoute`` checks the key and role first, then hands the request to FastAPI's own
handler. A route's permission is the one named by its ``require(...)`` dependency (``app.auth.deps``),
so the route declares it once and this is the only place it is checked.

A refused call whose body was not read is answered with ``Connection: close``: the server then stops
reading instead of draining an unread body (uvicorn would otherwise read and discard all of it).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.auth.key_cache import KeyCache
from app.auth.roles import ROLE_PERMISSIONS, Permission
from app.auth.service import Principal, authenticate
from app.core.openapi import problem_responses, structural_problems
from app.core.refusals import RefusalLimiter

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AuthenticatedRoute(APIRoute):
    """An API route that authenticates and authorises on the headers before FastAPI reads the body.

    It also lists, in the OpenAPI document, the problem responses that follow from how it is built
    (``app.core.openapi``): a keyed route may answer 401, 429 and 503 (the key check reads the database),
    and 403 when some role lacks its permission. What the route declares itself takes precedence.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        statuses = structural_problems(self)
        permissions = required_permissions(self.dependant)
        if permissions is not None:
            statuses |= {401, 429, 503}
            if any(not all(p in held for held in ROLE_PERMISSIONS.values()) for p in permissions):
                statuses.add(403)
        self.responses = {**problem_responses(*sorted(statuses)), **self.responses}

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        permissions = required_permissions(self.dependant)
        if permissions is None:
            return handler

        async def authenticated(request: Request) -> Response:
            await authorise(request, permissions)
            return await handler(request)

        return authenticated


def required_permissions(dependant: Dependant) -> frozenset[Permission] | None:
    """Every permission named by a ``require(...)`` dependency anywhere in the route's dependency tree:
    ``None`` when no such dependency asks for a key, an empty set when any valid key will do."""
    found: set[Permission] = set()
    keyed = False
    pending = [dependant]
    while pending:
        current = pending.pop()
        marker = getattr(current.call, "permission", False)  # require(None) marks "any valid key"
        if marker is not False:
            keyed = True
            if isinstance(marker, Permission):
                found.add(marker)
        pending.extend(current.dependencies)
    return frozenset(found) if keyed else None


async def authorise(request: Request, permissions: frozenset[Permission]) -> Principal:
    """The caller, who must hold every one of ``permissions``; stored on ``request.state.principal``
    (the audit log names it, refused or not). 401 without a usable key (429 past the address's limit
    on refused calls, see ``app.core.refusals``), 403 for a role without the permission. A valid key's
    check is reused for up to ``key_cache_seconds`` (``app.auth.key_cache``); a refused one is always
    read again."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    principal = None
    if scheme.lower() == "bearer" and token:
        state = request.app.state
        cache: KeyCache = state.key_cache
        principal = cache.get(token)
        if principal is None:
            principal = await run_in_threadpool(_lookup, state.read_engine, token)
            if principal is not None:
                cache.put(token, principal)
    if principal is None:
        raise _refused(request, "invalid or revoked API key" if token else "missing API key")
    request.state.principal = principal
    request.app.state.key_usage.used(principal.key_id)
    missing = sorted(p.value for p in permissions if not principal.can(p))
    if missing:
        raise HTTPException(403, f"role {principal.role.value!r} may not {missing[0]}", headers=_close(request))
    return principal


def _lookup(engine: Engine, token: str) -> Principal | None:
    """On a read-only connection of its own (``app.db.engine.read_only``): the key check never waits for
    the database's write lock, and no connection is held while the body streams in afterwards."""
    with engine.connect() as conn:
        return authenticate(conn, token)


def _refused(request: Request, reason: str) -> HTTPException:
    limiter: RefusalLimiter = request.app.state.refusal_limiter
    refusal = limiter.refuse(request.client.host if request.client else "unknown")
    request.state.anonymous_refusal = refusal  # the audit log logs only the first call past the limit
    if refusal.limited:
        detail = f"too many refused calls without a valid API key from this address; retry in {refusal.retry_after} s"
        return HTTPException(429, detail, headers={"Retry-After": str(refusal.retry_after), **_close(request)})
    detail = f"{reason}: send 'Authorization: Bearer <key>'"
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer", **_close(request)})


def _close(request: Request) -> dict[str, str]:
    """``Connection: close`` when the request has a body: it is refused unread."""
    has_body = request.headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in request.headers
    return {"Connection": "close"} if has_body else {}
