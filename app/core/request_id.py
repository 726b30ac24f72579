"""The id of the request being served: chosen once per request, read by logs and problem responses.

It is set by ``app.observability.middleware`` (which also binds it into every log line) and read here by
``app.core.problems``; it lives in ``core`` so that problem responses need nothing above ``core``.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("fairaudit_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context (``None`` outside a request)."""
    return _request_id.get()


def set_request_id(request_id: str) -> None:
    _request_id.set(request_id)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` if it is a sane token (1-128 letters, digits or ``._:@/+=-``), else a
    new random id: a hostile header (control characters, a megabyte of text) reaches no log line and no
    response."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex
