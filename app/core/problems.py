"""RFC 9457 problem documents for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.error_list import capped
from app.core.errors import ConflictError, InputError, NotFoundError
from app.core.request_id import current_request_id
from app.core.server_paths import hide_server_paths

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
# RFC 9457: with type about:blank the title is the status's reason phrase. Python < 3.13 still has
# RFC 7231's names for these two; RFC 9110 renamed them.
_RFC_9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}
DATABASE_RETRY_AFTER_S = 5


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title(status),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    request_id = current_request_id()
    if request_id is not None:  # what to quote to whoever reads the logs (every line of the request has it)
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def title(status: int) -> str:
    try:
        return _RFC_9110_PHRASES.get(status) or HTTPStatus(status).phrase
    except ValueError:  # a status code Python does not know
        return f"HTTP {status}"


def _public(request: Request, value: Any) -> Any:
    """``value`` (a message, or an error entry) with server paths hidden (``app.core.server_paths``)."""
    settings = request.app.state.settings
    if isinstance(value, str):
        return hide_server_paths(value, settings)
    if isinstance(value, dict):
        return {k: hide_server_paths(v, settings) if isinstance(v, str) else v for k, v in value.items()}
    return value


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return problem(exc.status, _public(request, exc.detail), [_public(request, e) for e in exc.errors])

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return problem(404, _public(request, str(exc)))

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return problem(409, _public(request, str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, _public(request, str(exc.detail)), headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # unreachable server, dropped connection, SQLite lock held past the busy timeout: transient, so
        # the caller is told to retry (its session rolled back; a commit cut off mid-way is the one
        # case where the database may hold the change, which is why this does not say otherwise)
        log.error("database unavailable during %s %s: %s", request.method, request.url.path, exc.orig)
        detail = "the database is unavailable or busy; retry later"
        return problem(503, detail, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost middleware calls this, then re-raises: the server logs the traceback
        # (with the request id), the client gets a problem naming the id instead of a bare text 500
        return problem(500, "an unexpected error occurred; quote the request id when you report it")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = capped({"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors())
        return problem(422, "the request does not match the schema", errors)
