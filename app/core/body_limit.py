"""Refuse request bodies over the size limit before they are parsed or spooled to disk.

FastAPI reads a multipart body completely before any endpoint or dependency runs, so the limit has
to be enforced here: at once from ``Content-Length``, and while streaming for chunked bodies.

A chunked body found too large while FastAPI reads it raises ``BodyTooLarge`` out of ``receive``:
it is an ``HTTPException`` because FastAPI turns any other error met while reading a body into a 400
("There was an error parsing the body"), and re-raises only these; the problem handlers answer 413.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import problem


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit), headers={"Connection": "close"})  # the rest is not read


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, default_limit: int, upload_limit: int, upload_paths: tuple[str, ...]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] in self.upload_paths else self.default_limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(scope, receive, send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _reject(scope, receive, send, limit)


async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = problem(413, _detail(limit), headers={"Connection": "close"})  # the rest is not read
    await response(scope, receive, send)


def _detail(limit: int) -> str:
    return f"the request body is larger than the limit of {limit:,} bytes"
