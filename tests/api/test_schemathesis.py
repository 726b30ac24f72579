"""Schemathesis over ``/openapi.json`` with an admin key, against the ASGI app on an empty database:
no server error, and no answer the document does not declare (``api_document.fuzz`` says what is checked).
Requests are derandomized, so every run sends the same ones."""

from __future__ import annotations

from api_document import fuzz

from app.main import create_app


def test_every_operation_answers_as_documented(settings, keys):
    # Schemathesis also calls each keyed operation without a key and expects 401; past the per-address
    # limit on refused calls those would be 429s (that limit has its own tests in test_request_lifecycle)
    unlimited = settings.model_copy(update={"anonymous_refusals_per_window": 1_000_000})
    app = create_app(unlimited, run_supervisor=False)
    failures = fuzz(app, keys.headers("admin"), max_examples=15)
    assert not failures, "\n\n".join(failures)
