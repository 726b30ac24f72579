"""Hostile values in otherwise ordinary requests (issue 10, items 5 and 16): each answers a 4xx naming
the field and leaves no row and no file behind, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json

import pytest
from archives import CONFIG, make_zip
from sqlalchemy import func, select

from app.auth.models import ApiKey, Organisation
from app.auth.service import ensure_organisation
from app.cohorts.models import Cohort
from app.core.errors import InputError
from app.db.engine import transaction
from app.fairness.models import Evaluation
from app.jobs.models import Job

DEEP = "[" * 100_000 + "]" * 100_000
AUDIT = {"name": "vendor model", "sensitive_attributes": ["sex"], "threshold": 0.5}
PREDICTIONS = "y_true,y_score,sex\n" + "".join(f"{i % 2},{(i % 10) / 10},{'fm'[i % 3 == 0]}\n" for i in range(60))
UNSAFE_NAMES = {"NUL": "ward\x00a", "right-to-left override": "scan\u202egnp.exe", "newline": "a\nb"}


def post_cohort(client, headers, config: dict | str):
    raw = config if isinstance(config, str) else json.dumps(config)
    return client.post("/v1/cohorts", headers=headers, files={"archive": ("c.zip", make_zip(20))}, data={"config": raw})


def post_audit(client, headers, config: dict | str = AUDIT):
    raw = config if isinstance(config, str) else json.dumps(config)
    return client.post(
        "/v1/audits", headers=headers, files={"predictions": ("p.csv", PREDICTIONS.encode())}, data={"config": raw}
    )


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def fields(response) -> list[str]:
    return [e.get("field") for e in response.json().get("errors", [])]


def assert_nothing_stored(settings, session_factory) -> None:
    assert count(session_factory, Cohort) == 0 and count(session_factory, Job) == 0
    assert count(session_factory, Evaluation) == 0
    cohorts = settings.data_dir / "cohorts"
    assert not cohorts.exists() or not list(cohorts.iterdir())


def test_negative_seeds_are_422_naming_the_seed(client, keys, settings, session_factory):
    headers = keys.headers()
    split = post_cohort(client, headers, {**CONFIG, "split": {"mode": "random", "seed": -1}})
    assert split.status_code == 422, split.text
    assert fields(split) == ["split.random.seed"]
    audit = post_audit(client, headers, {**AUDIT, "seed": -1})
    assert audit.status_code == 422, audit.text
    assert fields(audit) == ["seed"]
    assert_nothing_stored(settings, session_factory)

    ids = [post_audit(client, headers).json()["id"] for _ in range(2)]
    compare = client.post("/v1/compare", headers=headers, json={"evaluation_ids": ids, "seed": -1})
    assert compare.status_code == 422 and fields(compare) == ["body.seed"], compare.text
    assert "cannot be paired" not in compare.text


def test_deeply_nested_config_is_422_not_a_recursion_error(client, keys, settings, session_factory):
    headers = keys.headers()
    for response in (
        post_cohort(client, headers, '{"name": ' + DEEP + "}"),
        post_audit(client, headers, '{"name": ' + DEEP + "}"),
    ):
        assert response.status_code == 422, response.text
        assert fields(response) == ["config"] and "nested" in response.json()["detail"]
    assert_nothing_stored(settings, session_factory)
    # brackets inside strings are text, not nesting
    named = post_cohort(client, headers, {**CONFIG, "name": "[[[{" * 40})
    assert named.status_code == 202, named.text


def test_a_cursor_with_a_naive_timestamp_is_400_naming_the_cursor(client, keys):
    headers = keys.headers()
    forged = {
        "naive timestamp": ["2026-01-01T00:00:00", "coh_x"],
        "id with a NUL": ["2026-01-01T00:00:00+00:00", "coh_\x00"],
        "out-of-range offset": ["9999-12-31T23:59:59-23:00", "coh_x"],
    }
    for case, content in forged.items():
        cursor = base64.urlsafe_b64encode(json.dumps(content).encode()).decode().rstrip("=")
        for path in ("/v1/cohorts", "/v1/jobs", "/v1/evaluations", "/v1/models"):
            response = client.get(path, headers=headers, params={"cursor": cursor})
            assert response.status_code == 400, (case, path, response.text)
            assert fields(response) == ["cursor"], (case, path)


@pytest.mark.parametrize("case", sorted(UNSAFE_NAMES))
def test_names_with_control_or_bidi_characters_are_refused(case, client, keys, settings, session_factory):
    name = UNSAFE_NAMES[case]
    headers = keys.headers("admin")
    keys_before = count(session_factory, ApiKey)
    cohort = post_cohort(client, headers, {**CONFIG, "name": name})
    audit = post_audit(client, headers, {**AUDIT, "name": name})
    key = client.post("/v1/keys", headers=headers, json={"role": "auditor", "name": name})
    for response, field in ((cohort, "name"), (audit, "name"), (key, "body.name")):
        assert response.status_code == 422, response.text
        assert fields(response) == [field] and "character" in response.text
    assert_nothing_stored(settings, session_factory)
    assert count(session_factory, ApiKey) == keys_before
    with pytest.raises(InputError, match="organisation name"), transaction(session_factory) as session:
        ensure_organisation(session, f"St {name}")
    assert count(session_factory, Organisation) == 1


def test_nul_in_ids_and_filters_is_a_4xx_on_both_databases(client, keys):
    headers = keys.headers()
    in_url = [
        client.get("/v1/cohorts/coh_%00", headers=headers),
        client.delete("/v1/cohorts/coh_%00", headers=headers),
        client.get("/v1/jobs", headers=headers, params={"status": "queued\x00"}),
        client.get("/v1/evaluations", headers=headers, params={"model_version_id": "\x00"}),
    ]
    for response in in_url:
        assert response.status_code == 400, response.text
        assert "control character" in response.json()["detail"]
    in_body = [
        (
            "body.cohort_id",
            client.post("/v1/jobs", headers=headers, json={"cohort_id": "coh_\x00", "sensitive_attributes": ["sex"]}),
        ),
        (
            "body.model_version_id",
            client.put("/v1/models/aliases/production", headers=headers, json={"model_version_id": "mdl_\x00"}),
        ),
        (
            "body.evaluation_ids.1",
            client.post("/v1/compare", headers=headers, json={"evaluation_ids": ["evl_a", "evl_\x00"]}),
        ),
        ("body.cohort_id", client.post("/v1/models/mdl_a/evaluate", headers=headers, json={"cohort_id": "\x00"})),
    ]
    for field, response in in_body:
        assert response.status_code == 422, response.text
        assert fields(response) == [field]
