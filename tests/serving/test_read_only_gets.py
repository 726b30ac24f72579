"""Every GET route answers while another connection holds the database's write lock.

On SQLite a transaction that may write takes the single write lock at BEGIN, so a GET served from a
write session would queue behind every job process and prediction writer; GETs use read-only
sessions, which never wait for it. The app under test gets a busy timeout of 0, so a GET that waited
for the lock fails at once (503) instead of after 30 s. On PostgreSQL readers never wait for writers,
unless they write or lock rows themselves: there the other connection holds an EXCLUSIVE lock on every
table (plain SELECTs only may pass) and the app's lock timeout turns any wait into a failure.

The list of GET routes comes from the OpenAPI document, so a GET route added later must be added here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from archives import make_zip, upload
from audit_helpers import post_audit, predictions_csv
from fastapi.testclient import TestClient
from job_helpers import finish, organisation_id, running_job
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import app.db.engine
from app.db.base import Base
from app.main import create_app
from app.settings import Settings
from app.studies.models import Study


@contextmanager
def write_locked(url: str) -> Iterator[None]:
    """Another connection holding the write lock (SQLite) or an exclusive lock on every table (PostgreSQL)."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # e.g. a job process in the middle of a long write
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
            yield
            conn.rollback()
    finally:
        engine.dispose()


def impatient(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for an app whose database connections never wait for a lock. Called once the test's
    rows are written: on SQLite it sets the busy timeout of every connection opened from then on, and
    the setup's own writes must still wait for the background loops of the app that wrote them."""
    if settings.is_sqlite:
        monkeypatch.setattr(app.db.engine, "SQLITE_BUSY_TIMEOUT_MS", 0)
        return settings
    url = make_url(settings.database_url).update_query_dict({"options": "-c lock_timeout=1000"})
    return settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})


def ended_study(session_factory, organisation: str, cohort_id: str, evaluation_id: str) -> str:
    """A succeeded one-config study row (its event stream ends at once, it has a report) whose pooled
    evaluation is ``evaluation_id``, without training its children."""
    summary = {"index": 0, "label": "config 0 (erm)", "method": "erm", "pooled": [], "missing": []}
    summary |= {"thresholds": {}, "n_predictions": 200, "final_model_version_id": None, "evaluation_id": evaluation_id}
    with session_factory.begin() as session:
        study = Study(
            organisation_id=organisation,
            cohort_id=cohort_id,
            name="ended",
            status="succeeded",
            result={"configs": [summary], "reference": 0, "comparison": None},
            folds=2,
            seeds=1,
            repeat_splits=False,
            allow_failures=False,
            final_models=False,
            val_fraction=0.15,
            configs=[{"method": "erm", "sensitive_attributes": ["sex"]}],
        )
        session.add(study)
        session.flush()
        return study.id


def test_every_get_route_answers_while_the_database_is_write_locked(
    client, served, keys, session_factory, settings, monkeypatch
) -> None:
    admin = keys.headers("admin")
    job = running_job(session_factory, organisation_id(session_factory))  # claims the oldest queued job:
    finish(session_factory, job)  # before the cohort's ingestion job is queued
    assert client.put("/v1/models/aliases/production", headers=admin, json={"model_version_id": served.id}).is_success
    policy = {"attributes": ["sex"], "checks": [{"check": "limit", "metric": "auc", "min": 0.0}]}
    for scope in ("", "/production"):
        assert client.put(f"/v1/policies{scope}", headers=admin, json=policy).is_success
    cohort = upload(client, admin, make_zip(20)).json()["id"]
    evaluation = post_audit(client, admin, predictions_csv(200)).json()["id"]
    models = (served.id, "production")
    band = {"check": "group_band", "attribute": "sex", "metric": "fpr", "max_spread": 0.3}
    rule = client.post("/v1/alert-rules", headers=admin, json={"name": "r", "model_ref": served.id, "rule": band})
    webhook = client.post("/v1/webhooks", headers=admin, json={"url": "https://alerts.example.org/hook"})
    rule_id, webhook_id = rule.json()["id"], webhook.json()["id"]
    study = ended_study(session_factory, organisation_id(session_factory), cohort, evaluation)
    urls = {
        "/healthz": ["/healthz"],
        "/readyz": ["/readyz"],
        "/metrics": ["/metrics"],
        "/v1/keys": ["/v1/keys"],
        "/v1/keys/me": ["/v1/keys/me"],
        "/v1/cohorts": ["/v1/cohorts"],
        "/v1/cohorts/{cohort_id}": [f"/v1/cohorts/{cohort}"],
        "/v1/jobs": ["/v1/jobs"],
        "/v1/jobs/{job_id}": [f"/v1/jobs/{job}"],
        "/v1/jobs/{job_id}/events": [f"/v1/jobs/{job}/events"],
        "/v1/evaluations": ["/v1/evaluations"],
        "/v1/evaluations/{evaluation_id}": [f"/v1/evaluations/{evaluation}"],
        "/v1/evaluations/{evaluation_id}/report": [f"/v1/evaluations/{evaluation}/report"],
        "/v1/evaluations/{evaluation_id}/model-card": [f"/v1/evaluations/{evaluation}/model-card"],
        "/v1/evaluations/{evaluation_id}/metrics": [f"/v1/evaluations/{evaluation}/metrics?metric=auc"],
        "/v1/evaluations/{evaluation_id}/predictions.csv": [f"/v1/evaluations/{evaluation}/predictions.csv"],
        "/v1/models": ["/v1/models"],
        "/v1/studies": ["/v1/studies"],
        "/v1/studies/{study_id}": [f"/v1/studies/{study}"],
        "/v1/studies/{study_id}/events": [f"/v1/studies/{study}/events"],
        "/v1/studies/{study_id}/report": [f"/v1/studies/{study}/report"],
        "/v1/models/{model_ref}": [f"/v1/models/{m}" for m in models],
        "/v1/models/{model_ref}/onnx": [f"/v1/models/{m}/onnx?file=model.json" for m in models],
        "/v1/models/{model_ref}/monitoring": [f"/v1/models/{m}/monitoring" for m in models],
        "/v1/alert-rules": ["/v1/alert-rules"],
        "/v1/alert-rules/{rule_id}": [f"/v1/alert-rules/{rule_id}"],
        "/v1/alerts": ["/v1/alerts?status=firing"],
        "/v1/webhooks": ["/v1/webhooks"],
        "/v1/webhooks/{webhook_id}/deliveries": [f"/v1/webhooks/{webhook_id}/deliveries"],
        "/v1/models/{model_ref}/gate": [f"/v1/models/{m}/gate?alias=production" for m in models],
        "/v1/models/aliases/{name}/history": ["/v1/models/aliases/production/history"],
        "/v1/policies": ["/v1/policies"],
        "/v1/policies/{alias}": ["/v1/policies/production"],
    }
    impatient_settings = impatient(settings, monkeypatch)
    with TestClient(create_app(impatient_settings, run_supervisor=False)) as locked_client:
        paths = locked_client.app.openapi()["paths"]
        assert set(urls) == {path for path, operations in paths.items() if "get" in operations}
        with write_locked(impatient_settings.database_url):
            answers = {
                url: locked_client.get(url, headers=admin).status_code for group in urls.values() for url in group
            }
    assert answers == dict.fromkeys(answers, 200)
