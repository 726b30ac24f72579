"""Refuse URLs whose path or query holds control characters, before any route or database sees them.

Ids, aliases and filters arrive in the URL. PostgreSQL cannot hold NUL in text, not even as a value to
compare with, so ``GET /v1/cohorts/coh_%00`` answered 500 there (and 404 on SQLite); other control
characters have no place in an id either and would forge lines in logs. One check here answers 400
naming the part of the URL on both databases.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.problems import problem

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def url_problem(scope: Scope) -> str | None:
    """Where the request's URL holds a control character, or ``None``."""
    if _CONTROL.search(scope["path"]):
        return "the path"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _CONTROL.search(name) or _CONTROL.search(value):
            return f"query parameter {name!r}"
    return None


class UrlGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = url_problem(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        response = problem(400, f"{where} contains a control character (such as NUL), which no id or name may hold")
        await response(scope, receive, send)
