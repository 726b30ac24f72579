"""How the API describes its errors: the ``Problem`` model of every error body, and ``problem_responses``,
the one helper that lists a route's problem responses for the OpenAPI document.

Every error is an RFC 9457 ``application/problem+json`` document (``app.core.problems``). FastAPI can
only attach a response model under the route's own media type (``application/json``), so a problem
response refers to the ``Problem`` schema by ``$ref`` under ``application/problem+json``, and
``add_problem_schemas`` puts that schema into the document.

Some problems follow from how a route is built rather than from what it does, so no route has to list
them (``app.auth.route.AuthenticatedRoute`` adds them): ``structural_problems`` here, and the key
check's own (401, 403, 429, 503). What a route does (404, 409, …) it declares with ``problem_responses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, NotRequired

from fastapi import FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from app.core.problems import PROBLEM_JSON, title

COMPONENTS = "#/components/schemas/"

#: What each status means anywhere in this API; a route may add what it means there (``notes``).
PROBLEM_MEANINGS: dict[int, str] = {
    400: "malformed: a control character in the URL, a cursor this API did not issue, or a body that "
    "cannot be parsed (multipart, CSV, UTF-8)",
    401: "no usable API key: missing, unknown or revoked; send 'Authorization: Bearer <key>'",
    403: "the key's role lacks the permission this operation needs",
    404: "no such resource in the caller's organisation (another organisation's resources answer 404 too)",
    409: "the resource's state does not allow this now",
    413: "the body, or an archive, file or batch inside it, is over a size limit",
    415: "the body's content type is not one this operation reads",
    422: "well-formed but invalid: 'errors' names every offending field, row, column or file",
    429: "too many calls without a valid key from this address; retry after Retry-After seconds",
    503: "the database is unavailable or busy; retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


# TypedDicts, not models: a key that is not always there is absent (never null), and the schema leaves
# room for further members, as RFC 9457 allows.
class ProblemError(TypedDict):
    """One offending part of the request. Which keys appear depends on what was wrong."""

    message: str
    field: NotRequired[Annotated[str, Field(description="dotted path of a request field, e.g. body.lr")]]
    row: NotRequired[Annotated[int, Field(description="1-based row of a CSV file (the header is row 1)")]]
    column: NotRequired[Annotated[str, Field(description="a CSV column")]]
    file: NotRequired[Annotated[str, Field(description="a file of an upload or archive")]]
    image: NotRequired[Annotated[int, Field(description="0-based index of an image of a prediction request")]]


class Problem(TypedDict):
    """An RFC 9457 problem document: what every error of this API answers with."""

    type: Annotated[str, Field(description="always about:blank: the status says what kind")]
    title: Annotated[str, Field(description="the status's reason phrase (RFC 9110)")]
    status: int
    detail: Annotated[str, Field(description="what was wrong, in words a person can act on")]
    errors: NotRequired[
        Annotated[
            list[ProblemError],
            Field(description="every offending field, row, column or file (capped; the last entry counts the rest)"),
        ]
    ]
    request_id: NotRequired[Annotated[str, Field(description="the request's id, as in the server's log lines")]]


def problem_responses(*statuses: int, notes: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of a route for ``statuses``: each a problem+json body (``Problem``) with
    the status's meaning, plus the route's own ``notes`` on it (e.g. 409: what conflicts)."""
    notes = notes or {}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        meaning = PROBLEM_MEANINGS[status]
        description = f"{title(status)}: {meaning}" + (f" ({notes[status]})" if status in notes else "")
        entry: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"{COMPONENTS}Problem"}}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        responses[status] = entry
    return responses


def structural_problems(route: APIRoute) -> set[int]:
    """400 for every route (``app.core.url_guard`` refuses control characters in any URL); 413 for a route
    that reads a body (``app.core.body_limit``); 422 for one with a body or parameters. (FastAPI's own 422,
    ``HTTPValidationError`` as ``application/json``, describes a body this API never sends: declaring the
    problem instead keeps it out.)"""
    statuses = {400}
    has_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    if has_body:
        statuses.add(413)
    if has_body or get_flat_params(route.dependant):
        statuses.add(422)
    return statuses


@cache
def problem_schemas() -> dict[str, Any]:
    """The component schemas ``Problem`` references name: ``Problem`` and ``ProblemError``."""
    schema = TypeAdapter(Problem).json_schema(ref_template=COMPONENTS + "{model}", mode="serialization")
    definitions: dict[str, Any] = schema.pop("$defs")
    return {**definitions, "Problem": schema}


def add_problem_schemas(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document carry the schemas its problem responses refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it, and rebuilds it only when the routes change
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in problem_schemas().items():
            if schemas.setdefault(name, schema) is not schema:  # a model of the app has taken the name
                raise RuntimeError(f"the OpenAPI component name {name!r} is already taken")
        return document

    app.openapi = openapi  # type: ignore[method-assign]
