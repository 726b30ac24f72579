"""The caller as a route dependency: ``Reader``, ``Writer``, … name the permission a route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.roles import Permission
from app.auth.service import Principal

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

    The check itself is made by ``app.auth.route.AuthenticatedRoute`` from the request's headers
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
