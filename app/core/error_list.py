"""A capped collector of problems, so one error response stays small however bad the input.

Validation reports every problem at once, but a file with a million bad rows must not become a
100 MB response: the first ``limit`` problems are kept (the ``max_reported_errors`` setting), the
rest only counted, and the raised ``InputError`` says how many were left out (in its detail and as a
last entry of its list). ``capped`` does the same for a list built elsewhere (pydantic's errors).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.core.errors import InputError
from app.settings import get_settings


class ErrorList:
    def __init__(self, limit: int | None = None) -> None:
        self.limit = get_settings().max_reported_errors if limit is None else limit
        self.kept: list[dict[str, Any]] = []
        self.count = 0

    def add(self, error: dict[str, Any]) -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(error)

    def extend(self, errors: Iterable[dict[str, Any]]) -> None:
        for error in errors:
            self.add(error)

    def __bool__(self) -> bool:
        return self.count > 0

    def error(self, detail: str, status: int = 422) -> InputError:
        """The ``InputError`` to raise; when problems were left out, ``detail`` says so and the last
        entry of the list counts them."""
        left_out = self.count - len(self.kept)
        if not left_out:
            return InputError(detail, list(self.kept), status=status)
        more = {"message": f"and {left_out:,} more problem(s) not listed"}
        return InputError(f"{detail} (the first {len(self.kept):,} listed)", [*self.kept, more], status=status)


def capped(errors: Iterable[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` of ``errors`` and, when some are left out, an entry counting them."""
    collected = ErrorList(limit)
    collected.extend(errors)
    return collected.error("").errors
