"""Audit trail: one row for every state-changing call (POST, PUT, PATCH, DELETE), whatever its outcome.

Written by an ASGI middleware after the response status is known, outside the request's own
transaction, so a rejected or failed call is recorded too (its own changes having been rolled back).
The row goes through the app's group-commit writer (``app.db.group_commit``): no threadpool hop, no
turn of its own at SQLite's write lock, and the call is complete only once its row is committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.models import AuditLogEntry
from app.db.base import utcnow
from app.db.group_commit import GroupCommitWriter

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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
        route = scope.get("route")
        action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        client = scope.get("client")
        entry = {
            "created_at": utcnow(),  # when the call ended, not when its batch was written
            "organisation_id": getattr(principal, "organisation_id", None),
            "api_key_id": getattr(principal, "key_id", None),
            "method": scope["method"],
            "path": scope["path"],
            "action": action[:64],
            "resource_id": state.get("audit_resource_id"),
            "status_code": status_code,
            "client": client[0] if client else None,
            "detail": None,
        }
        writer: GroupCommitWriter = scope["app"].state.row_writer
        try:
            await asyncio.wrap_future(writer.submit(AuditLogEntry, [entry]))
        except Exception:  # the audit write must never turn a served response into a crash
            log.exception("could not write audit-log row for %s %s", scope["method"], scope["path"])
