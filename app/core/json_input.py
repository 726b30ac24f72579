"""JSON sent inside a form field (the ``config`` of cohort uploads and audits), parsed safely.

Python's parser recurses once per nesting level: ``[[[[…]]]]`` 100,000 deep raises ``RecursionError``
(a 500) instead of a parse error, and a merely deep document still costs the validator a recursion
per level. No config needs more than a few levels, so the depth is counted first, by one linear scan
over the brackets outside string literals, and a deeper document is refused before it is parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.core.errors import InputError

MAX_DEPTH = 32
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def deeper_than(text: str, limit: int) -> bool:
    """Whether the brackets outside string literals nest deeper than ``limit`` anywhere."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def load_json_field(raw: str | bytes, field: str = "config") -> Any:
    """The parsed value of a JSON form field, or ``InputError`` (422) naming ``field``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InputError(f"{field} is not UTF-8", [{"field": field, "message": "not UTF-8 text"}]) from None
    if deeper_than(text, MAX_DEPTH):
        message = f"nested more than {MAX_DEPTH} levels deep"
        raise InputError(f"{field} is {message}", [{"field": field, "message": message}])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{field} is not valid JSON", [{"field": field, "message": str(exc)}]) from None
