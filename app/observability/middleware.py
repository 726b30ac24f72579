"""What is recorded around every HTTP request: its id, its latency, one access-log line.

``RequestObservationMiddleware`` is the outermost middleware. For each HTTP request it

- picks the request id (``app.core.request_id``: the caller's sane ``X-Request-ID``, or a new one) and
  binds it in context variables, so every log line written while the request runs, in the event loop or
  in a threadpool thread (Starlette copies the context into it), carries ``request_id``, and problem+json
  bodies name it (``app.core.problems``);
- echoes it in the ``X-Request-ID`` response header;
- records the request's duration in ``Telemetry``'s latency histogram, by route template (never the raw
  path, whose ids would make one series per resource) and status class, and writes one access-log line.

The context variables are set, not reset, on purpose: each request runs in a task of its own, whose
context ends with it, and the handler of an unexpected error (Starlette's outermost middleware, outside
this one) and the server's own error log must still see the id.
"""

from __future__ import annotations

import logging
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.request_id import request_id_from, set_request_id
from app.observability.metrics import Telemetry

MAX_LOGGED_PATH = 512
access_log = logging.getLogger("fairaudit.access")


class RequestObservationMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        set_request_id(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500  # unless a response starts: an exception escaped every handler
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.telemetry.observe_request(scope["method"], route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                path = scope["path"][:MAX_LOGGED_PATH]
                fields = {"method": scope["method"], "path": path, "route": route, "status": status}
                access_log.info(
                    "%s %s %d", scope["method"], path, status, extra={**fields, "ms": round(seconds * 1e3, 2)}
                )
