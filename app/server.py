"""Serving the app with uvicorn, with limits on slow and oversized requests.

uvicorn times out only idle keep-alive connections. A client that opens a connection and sends nothing,
trickles its request line and headers a byte at a time (slowloris) or trickles its body holds a
connection, and a task, for as long as it likes. ``protocol_class`` adds to uvicorn's httptools protocol:

- a header timeout: a request's line and headers must be complete within ``header_timeout_seconds``
  of its first byte (of the connection, for its first request); else 408 and the connection is closed;
- a body rate: while a body is being received, each ``body_timeout_seconds`` window must bring at least
  ``min_body_bytes_per_second`` × the window, else the connection is closed (the request's handler sees
  a client disconnect and rolls back). Windows in which the server itself holds the body back (the app
  is not reading, or has not yet answered ``Expect: 100-continue``) do not count;
- a size cap: request line and headers over ``max_header_bytes`` are answered 431 and closed.

``max_connections`` is uvicorn's ``limit_concurrency``: past it, new requests are answered 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings, get_settings


class _HeadersTooLarge(Exception):
    pass


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a minimum body rate and a header size cap.
    Subclassed per settings by ``protocol_class``."""

    header_timeout: float = 20.0
    body_timeout: float = 20.0
    min_body_rate: int = 500
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # some of a request's line or headers arrived, not all
        self._header_bytes = 0
        self._window_bytes = 0  # body bytes received in the current rate window
        self._refusal: tuple[int, str] | None = None

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    # request line and headers
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._header_bytes = True, 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_header_timer()
        super().on_headers_complete()
        self._window_bytes = 0
        self._body_timer = self.loop.call_later(self.body_timeout, self._check_body_rate)

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            self._refusal = (431, f"request line and headers over {self.max_header_bytes} bytes")
            raise _HeadersTooLarge()  # stops the parser; uvicorn then calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*self._refusal)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        self.logger.warning("closing %s: no complete request headers within %g s", self.client, self.header_timeout)
        if self._in_headers:
            self._refuse(408, f"request line and headers not received within {self.header_timeout:g} s")
        else:  # a connection that never sent a request
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        if not self.transport.is_closing():
            reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            body = message.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
            )
            self.transport.close()

    # body
    def on_body(self, body: bytes) -> None:
        self._window_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()

    def _check_body_rate(self) -> None:
        self._body_timer = None
        held_back_by_server = self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)
        if not held_back_by_server and self._window_bytes < self.min_body_rate * self.body_timeout:
            self.logger.warning("closing %s: request body slower than %d bytes/s", self.client, self.min_body_rate)
            self.transport.close()
            return
        self._window_bytes = 0
        self._body_timer = self.loop.call_later(self.body_timeout, self._check_body_rate)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None


def protocol_class(settings: Settings) -> type[TimedHttpToolsProtocol]:
    return type(
        "ConfiguredHttpToolsProtocol",
        (TimedHttpToolsProtocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "min_body_rate": settings.min_body_bytes_per_second,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


class SettingsHttpToolsProtocol(TimedHttpToolsProtocol):
    """``TimedHttpToolsProtocol`` with the limits of this process's settings (``FAIRAUDIT_*``): what
    worker processes use, since uvicorn hands them the protocol by import name, not as a class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout, self.body_timeout = settings.header_timeout_seconds, settings.body_timeout_seconds
        self.min_body_rate, self.max_header_bytes = settings.min_body_bytes_per_second, settings.max_header_bytes


def serve(app: FastAPI | str, settings: Settings, host: str, port: int) -> None:
    """Serve ``app`` in this process or, given the import name of an app factory and
    ``settings.workers`` > 1, in that many worker processes sharing one listening socket (uvicorn's
    supervisor restarts a worker that dies; each builds its own app from the factory)."""
    workers = settings.workers if isinstance(app, str) else 1
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # logging is set up by app.observability.logs (JSON lines with request ids)
        access_log=False,  # app.observability.middleware writes a structured access line instead
        http=protocol_class(settings) if workers == 1 else f"{__name__}:SettingsHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        limit_concurrency=settings.max_connections,
    )
