"""The OpenAPI document describes the service as it behaves (issue 11, item 4): the bearer scheme on
exactly the operations that need a key, problem+json responses on every operation, typed bodies with
examples that the service itself accepts, and bounded page sizes."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from app.cohorts.config import parse_config
from app.core.openapi import PROBLEM_MEANINGS
from app.core.pagination import MAX_LIMIT
from app.fairness.schemas import AuditConfig
from app.main import create_app
from app.settings import Settings
from app.training.config import TrainingConfig

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_REF = "#/components/schemas/Problem"


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def validator(document: dict, schema: dict) -> Draft202012Validator:
    """Validates against ``schema``, its ``#/components/...`` references resolved in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


@pytest.fixture
def document(tmp_path) -> dict:
    """The document alone needs no database (none is opened until a request needs one)."""
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=tmp_path / "data",
        model_dir=tmp_path / "models",
    )
    return create_app(settings, run_supervisor=False).openapi()


def test_every_operation_has_a_summary_and_problem_responses(document):
    assert "HTTPValidationError" not in document["components"]["schemas"], "FastAPI's 422 is not what we send"
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    for path, method, op in operations(document):
        label = f"{method.upper()} {path}"
        assert op.get("summary"), label
        errors = {status: r for status, r in op["responses"].items() if status[0] in "45"}
        assert "400" in errors, f"{label}: every URL passes the control-character guard"
        for status, response in errors.items():
            if (path, status) == ("/readyz", "503"):
                continue  # readiness answers its checks, not a problem
            assert response["content"] == {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}, label
            assert int(status) in PROBLEM_MEANINGS, f"{label}: {status}"
        if "parameters" in op or "requestBody" in op:
            assert "422" in errors, label
        if "requestBody" in op:
            assert "413" in errors, label


def test_the_bearer_scheme_is_declared_on_exactly_the_operations_that_need_a_key(settings):
    """Each operation is called without a key: those answering 401 must declare the scheme, the others
    (health, readiness) must not."""
    # every call here is a refused anonymous call: keep them under the per-address limit's 429
    unlimited = settings.model_copy(update={"anonymous_refusals_per_window": 1_000_000})
    with TestClient(create_app(unlimited, run_supervisor=False)) as client:
        document = client.get("/openapi.json").json()
        schemes = document["components"]["securitySchemes"]
        assert list(schemes.values()) == [schemes["APIKey"]] and schemes["APIKey"]["scheme"] == "bearer"
        keyed = set()
        for path, method, op in operations(document):
            url = re.sub(r"\{[^}]+\}", "x", path)
            status = client.request(method.upper(), url).status_code
            if status == 401:
                keyed.add(f"{method.upper()} {path}")
            assert bool(op.get("security")) == (status == 401), f"{method.upper()} {path} answered {status}"
            if op.get("security"):
                assert op["security"] == [{"APIKey": []}] and "401" in op["responses"] and "429" in op["responses"]
    assert {"GET /healthz", "GET /readyz"}.isdisjoint(keyed) and len(keyed) > 20


def test_403_is_declared_where_some_role_lacks_the_permission(document):
    ops = {f"{method.upper()} {path}": op for path, method, op in operations(document)}
    assert "403" in ops["GET /v1/keys"]["responses"]  # admins only
    assert "403" in ops["GET /v1/cohorts"]["responses"]  # not predictors
    assert "403" not in ops["POST /v1/models/{model_ref}/predict"]["responses"]  # every role predicts
    assert "403" not in ops["GET /metrics"]["responses"]  # any valid key


def request_body_examples(document: dict, op: dict) -> list[tuple[object, dict]]:
    """(example, schema) pairs: whole-body examples, and for a form, each field's own examples."""
    found = []
    for media in op["requestBody"]["content"].values():
        schema = resolve(document, media["schema"])
        for example in schema.get("examples", []):
            found.append((example, schema))
        for field in schema.get("properties", {}).values():
            found += [(example, field) for example in field.get("examples", [])]
    return found


def test_every_request_body_has_examples_that_match_its_schema(document):
    for path, method, op in operations(document):
        if "requestBody" not in op:
            continue
        examples = request_body_examples(document, op)
        assert examples, f"{method.upper()} {path} has no example"
        for example, schema in examples:
            errors = [e.message for e in validator(document, schema).iter_errors(example)]
            assert not errors, (method, path, example, errors)


def test_the_json_form_field_examples_are_accepted_by_the_services_parsers(document):
    """The cohort and audit ``config`` fields are JSON in a form field: their examples must parse."""
    forms = {
        "/v1/cohorts": lambda text: parse_config(text),
        "/v1/audits": lambda text: AuditConfig.model_validate_json(text),
    }
    for path, parse in forms.items():
        body = resolve(
            document, document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        )
        examples = body["properties"]["config"]["examples"]
        assert examples
        for example in examples:
            parse(example)
            assert isinstance(json.loads(example), dict)


def test_the_training_request_shows_every_config_field_with_its_bounds(document):
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = resolve(document, body)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(TrainingConfig.model_fields) | {"cohort_id"}
    assert {"cohort_id", "sensitive_attributes"} <= set(schema["required"])
    epochs = schema["properties"]["epochs"]
    assert (epochs["minimum"], epochs["maximum"]) == (1, 1000)
    assert "pairwise-EO" in schema["properties"]["fairness_weight"]["description"]
    assert schema["properties"]["cohort_id"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"


def test_typed_responses_replace_free_form_objects(document):
    schemas = document["components"]["schemas"]

    def ref(path: str, method: str, status: str = "200") -> str:
        return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    assert ref("/v1/compare", "post").endswith("/Comparison")
    assert ref("/v1/evaluations/{evaluation_id}/model-card", "get").endswith("/ModelCard")
    evaluation = schemas[ref("/v1/evaluations/{evaluation_id}", "get").rsplit("/", 1)[1]]
    assert "FairnessReport" in json.dumps(evaluation["properties"]["report"])
    report = schemas["FairnessReport"]
    assert {"config", "population", "groupings", "evaluations", "exits", "summary"} <= set(report["properties"])


def test_page_sizes_are_bounded(client, keys, document):
    headers = keys.headers(role="admin")  # webhooks are an admin's
    listed = [
        path for path, method, op in operations(document) if any(p["name"] == "limit" for p in op.get("parameters", []))
    ]
    metric_rows = "/v1/evaluations/{evaluation_id}/metrics"
    deliveries = "/v1/webhooks/{webhook_id}/deliveries"
    history = "/v1/models/aliases/{name}/history"
    assert sorted(listed) == [
        "/v1/alert-rules",
        "/v1/alerts",
        "/v1/cohorts",
        "/v1/evaluations",
        metric_rows,
        "/v1/jobs",
        "/v1/models",
        history,
        "/v1/studies",
        "/v1/webhooks",
        deliveries,
    ]
    for path in listed:
        limit = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, MAX_LIMIT)
        # the bound is checked before the lookup
        url = (
            path.replace("{evaluation_id}", "evl_missing")
            .replace("{webhook_id}", "whk_missing")
            .replace("{name}", "production")
        )
        for bad in (0, MAX_LIMIT + 1, -5):
            response = client.get(url, params={"limit": bad}, headers=headers)
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == "query.limit"
        expected = 404 if path in (metric_rows, deliveries) else 200
        assert client.get(url, params={"limit": MAX_LIMIT}, headers=headers).status_code == expected
