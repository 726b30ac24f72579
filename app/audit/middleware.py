"""Audit trail: one row for every state-changing call (POST, PUT, PATCH, DELETE), whatever its outcome.

Written by an ASGI middleware after the response status is known, outside the request's own
transaction, so a rejected or failed call is recorded too (its own changes having been rolled back).
The row goes through the app's group-commit writer (``app.db.group_commit``): no threadpool hop, no
turn of its own at SQLite's write lock, and the call is complete only once its row is committed.

Untrusted text (path, resource id, client) is cut to a bounded length, and refused anonymous calls
count against their address's limit (``app.core.refusals``): past it, only the first refusal of the
window is logged, so a caller without a key cannot grow the log without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit.models import AuditLogEntry
from app.core.refusals import Refusal, RefusalLimiter
from app.db.base import utcnow
from app.db.group_commit import GroupCommitWriter

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_PATH_CHARS = 512
MAX_ID_CHARS = 64  # the width of the resource_id and client columns
log = logging.getLogger(__name__)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._record(scope, status["code"])

    async def _record(self, scope: Scope, status_code: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        principal = state.get("principal")
        client = scope.get("client")
        address = client[0] if client else "unknown"
        detail = state.get("audit_detail")  # what the route said about the change (app.core.deps.mark_resource)
        refusal: Refusal | None = state.get("anonymous_refusal")  # counted already if the key check refused it
        if refusal is None and principal is None and 400 <= status_code < 500:  # e.g. an unknown path
            limiter: RefusalLimiter = scope["app"].state.refusal_limiter
            refusal = limiter.refuse(address)
        if refusal is not None and refusal.limited:
            if not refusal.first_over:
                return
            detail = {"rate_limited": "past the limit on refused calls: the rest of this window is not logged"}
        route = scope.get("route")
        action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        entry = {
            "created_at": utcnow(),  # when the call ended, not when its batch was written
            "organisation_id": getattr(principal, "organisation_id", None),
            "api_key_id": getattr(principal, "key_id", None),
            "method": scope["method"],
            "path": _cut(scope["path"], MAX_PATH_CHARS),
            "action": _cut(action, 64),
            "resource_id": _cut(state.get("audit_resource_id"), MAX_ID_CHARS),
            "status_code": status_code,
            "client": _cut(address, MAX_ID_CHARS) if client else None,
            "detail": detail,
        }
        writer: GroupCommitWriter = scope["app"].state.row_writer
        try:
            await asyncio.wrap_future(writer.submit(AuditLogEntry, [entry]))
        except Exception:  # the audit write must never turn a served response into a crash
            log.exception("could not write audit-log row for %s %s", scope["method"], scope["path"])


def _cut(text: str | None, limit: int) -> str | None:
    """``text`` within ``limit`` characters, a cut one ending in "…"; NUL becomes U+FFFD, since
    PostgreSQL refuses NUL in text and the row of a hostile call would otherwise be lost."""
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"
