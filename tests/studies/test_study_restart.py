"""A study survives its server: SIGKILL the server while a child trains, start another, and the
restarted server resumes the children and completes the study (its supervisor's duty); the study's
final model is linked from the pooled evaluation."""

from __future__ import annotations

import pytest
from live_server import start_server, wait_for
from sqlalchemy import select
from study_helpers import REFERENCE, ready_cohort, study_body

from app.jobs.models import Job
from app.studies.models import Study


def statuses(session_factory, study_id: str) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(Job.status).where(Job.study_id == study_id)))


def study_status(session_factory, study_id: str) -> str:
    with session_factory() as session:
        study = session.get(Study, study_id)
        assert study is not None
        return study.status


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the embedded shape
def test_a_restarted_server_resumes_and_completes_a_study(client, keys, settings, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    body = study_body(cohort_id, configs=[REFERENCE], final_models=True)
    study = client.post("/v1/studies", headers=headers, json=body).json()
    server = start_server(settings)
    try:
        wait_for(lambda: "running" in statuses(session_factory, study["id"]), timeout=120)
        server.kill()
        assert study_status(session_factory, study["id"]) == "running"
        server = start_server(settings, server.port)
        wait_for(lambda: study_status(session_factory, study["id"]) != "running", timeout=400, step=1)
    finally:
        server.stop()
    done = client.get(f"/v1/studies/{study['id']}", headers=headers).json()
    assert done["status"] == "succeeded", done["error"]
    assert {c["status"] for c in done["children"]} == {"succeeded"}
    with session_factory() as session:
        attempts = {job.id: job.attempt for job in session.scalars(select(Job).where(Job.study_id == study["id"]))}
    assert max(attempts.values()) == 2, "the child killed with its server ran again after the restart"
    pooled = done["result"]["configs"][0]
    assert pooled["n_predictions"] == client.get(f"/v1/cohorts/{cohort_id}", headers=headers).json()["n_items"]
    # the final model (trained on the cohort's own split) carries the study's evidence
    (final,) = [c for c in done["children"] if c["fold"] is None]
    evaluation = client.get(f"/v1/evaluations/{pooled['evaluation_id']}", headers=headers).json()
    assert evaluation["model_version_id"] == final["model_version_id"] == pooled["final_model_version_id"]
    model = client.get(f"/v1/models/{final['model_version_id']}", headers=headers).json()
    assert model["config"]["study_id"] == study["id"]
