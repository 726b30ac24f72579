"""Field types for values users give the API, shared so every name, seed and reference is checked alike.

Names are shown back in lists, reports, model cards and logs, so a name may not carry characters that
hide or reorder text: control characters (NUL, which PostgreSQL cannot store in text; newlines, which
forge log lines; C1 controls), bidirectional overrides, embeddings and isolates (``report`` + U+202E +
``fdp.exe`` displays as ``reportexe.pdf``), line/paragraph separators and lone surrogates (not
encodable as UTF-8). Zero-width joiners stay allowed: some scripts need them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from app.core.errors import InputError

MAX_NAME_LENGTH = 200
RESOURCE_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


# PydanticCustomError, not ValueError: its message reaches the client without a "Value error, " prefix
def _safe_text(value: str) -> str:
    found = _UNSAFE.search(value)
    if found is not None:
        raise PydanticCustomError(
            "unsafe_character",
            "must not contain control or bidirectional-override characters (found {character} at position {position})",
            {"character": f"U+{ord(found.group()):04X}", "position": found.start() + 1},
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must contain a visible character")
    return value


def _resource_ref(value: str) -> str:
    if not RESOURCE_REF.fullmatch(value):
        raise PydanticCustomError("resource_ref", "must be an id or alias: 1-64 letters, digits, '_' or '-'")
    return value


#: Free text a user labels something with (may be empty): no control or bidi-override characters.
SafeText = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH), AfterValidator(_safe_text)]
#: A user-given name: ``SafeText`` that is not blank.
SafeName = Annotated[SafeText, StringConstraints(min_length=1), AfterValidator(_not_blank)]
#: An id or alias a request refers to (``coh_…``, ``mdl_…``, ``production``): checked before any lookup.
#: (The pattern is only shown in the schema; the validator checks it, with a message naming the rule.)
ResourceRef = Annotated[
    str,
    AfterValidator(_resource_ref),
    Field(json_schema_extra={"pattern": f"^{RESOURCE_REF.pattern}$"}, description="an id or alias"),
]
#: A random seed: numpy's generators refuse negative seeds, and 31 bits keep every backend's integers safe.
Seed = Annotated[int, Field(ge=0, lt=2**31, description="random seed, 0 ≤ seed < 2**31")]

#: Intersections a report shows besides its attributes: each a list of 2-4 attribute names.
ReportIntersections = Annotated[
    list[Annotated[list[str], Field(min_length=2, max_length=4)]],
    Field(
        max_length=8,
        description="intersections to report, each a list of 2-4 attributes, e.g. [['sex', 'age_group']]; "
        "unset: the intersection of all the cohort's own attributes. The intersection a model was "
        "trained on is always reported as well",
    ),
]

_NAME: TypeAdapter[str] = TypeAdapter(SafeName)
_TEXT: TypeAdapter[str] = TypeAdapter(SafeText)


def check_name(value: str, field: str, *, optional: bool = False) -> str:
    """``value`` if it is a valid ``SafeName`` (``SafeText`` when ``optional``), else ``InputError`` naming
    ``field``: the same rules for names that arrive outside a request body (the command line)."""
    try:
        return (_TEXT if optional else _NAME).validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise InputError(f"invalid {field}: {message}", [{"field": field, "message": message}]) from None
