"""Holding the service to its own OpenAPI document: Schemathesis fuzzing, and checking real responses.

``fuzz`` runs Schemathesis's generated requests (schema-valid and schema-violating, plus the document's
own examples) against the ASGI app and collects every failed check: a server error, a status, content
type, header or body the document does not declare, a keyed operation that answers without its key.
Two checks are left out on purpose: whether a schema-valid request is accepted, and whether a
schema-violating one is refused, depend on what the schema cannot say (the contents of an uploaded
archive or CSV, ids that exist, rules across fields; a query value arrives as text whatever its
generated type), and the service answers those with 4xx problems by design.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

CONFIG = schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"enabled": False}, "negative_data_rejection": {"enabled": False}}}
)


def fuzz(
    app: Any,
    headers: Mapping[str, str],
    *,
    max_examples: int,
    path_parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Every failure Schemathesis finds, one text per operation and strategy (empty: none). With
    ``path_parameters``, only the operations that take all of them are run, with those values."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        if path_parameters is not None and not set(path_parameters) <= names:
            continue
        fixed = dict(path_parameters) if path_parameters else None
        strategies = [operation.as_strategy(generation_mode=mode, path_parameters=fixed) for mode in GenerationMode]
        if path_parameters is None:
            strategies += schema.get_strategies_from_examples(operation)
        for strategy in strategies:
            try:
                _run(strategy, dict(headers), max_examples)
            except Unsatisfiable:  # nothing to vary: an operation without parameters has no invalid input
                continue
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label}: {exc}")
    return failures


def _run(strategy: Any, headers: dict[str, str], max_examples: int) -> None:
    @given(case=strategy)
    @settings(
        max_examples=max_examples,
        derandomize=True,  # the same requests on every run: CI stays stable
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers)

    check()


def assert_documented(app: Any, method: str, path: str, response: httpx.Response) -> None:
    """``response`` (to ``method path``, ``path`` as the document writes it) is one the document
    declares: status, content type, headers and body schema."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema[path][method].validate_response(response)
