"""Errors that carry a message a person can act on.

Domain code (ingestion, training, metrics) raises these without knowing about HTTP; the API turns
them into RFC 9457 problem documents (see ``app.core.problems``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class InputError(Exception):
    """Input that cannot be accepted. ``errors`` names every offending row, column or file.

    ``status`` is the HTTP status the API answers with (400 malformed, 413 too large,
    422 well-formed but invalid, 409 conflicting state).
    """

    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: int = 422

    def __str__(self) -> str:
        if not self.errors:
            return self.detail
        shown = "; ".join(_describe(e) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        return f"{self.detail}: {shown}{more}"


def _describe(error: dict[str, Any]) -> str:
    where = ", ".join(f"{k} {error[k]}" for k in ("row", "column", "file") if k in error)
    message = error.get("message", "")
    return f"{where}: {message}" if where else str(message)


class NotFoundError(Exception):
    """A resource that does not exist, or that the caller's organisation may not see."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class ConflictError(Exception):
    """The request is valid but the resource's state does not allow it (e.g. a cohort still ingesting)."""
