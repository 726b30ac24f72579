"""Audit trail: one row for every state-changing call (POST, PUT, PATCH, DELETE), whatever its outcome.

Written by an ASGI middleware in its own transaction after the response status is known, so a
rejected or failed call is recorded too (its own changes having been rolled back).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.models import AuditLogEntry
from app.db.engine import transaction

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
            # Off the event loop: on SQLite the write waits for the database lock, and the request
            # holding that lock may itself need the loop to finish.
            await run_in_threadpool(self._record, scope, status["code"])

    def _record(self, scope: Scope, status_code: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        principal = state.get("principal")
        route = scope.get("route")
        action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        client = scope.get("client")
        entry = AuditLogEntry(
            organisation_id=getattr(principal, "organisation_id", None),
            api_key_id=getattr(principal, "key_id", None),
            method=scope["method"],
            path=scope["path"],
            action=action[:64],
            resource_id=state.get("audit_resource_id"),
            status_code=status_code,
            client=client[0] if client else None,
            detail=None,
        )
        try:
            with transaction(scope["app"].state.session_factory) as session:
                session.add(entry)
        except Exception:  # the audit write must never turn a served response into a crash
            log.exception("could not write audit-log row for %s %s", scope["method"], scope["path"])
