"""Studies over HTTP: bad requests refused before any row or job, a 2-fold × 2-config study end to
end (real job processes), pooled out-of-fold evaluations, the paired comparison, cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import func, select
from study_helpers import CANDIDATE, REFERENCE, drive, ready_cohort, study_body

from app.fairness.evaluation import evaluate_predictions
from app.fairness.storage import evaluation_dir, load_predictions
from app.jobs.models import Job
from app.studies.models import Study


def counts(session_factory) -> tuple[int, int]:
    with session_factory() as session:
        studies = session.scalar(select(func.count()).select_from(Study))
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.kind != "ingest"))
    return studies, jobs


def test_bad_studies_are_refused_naming_the_problem_and_leave_nothing(client, keys, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs, n=40)
    other = ready_cohort(client, headers, run_jobs, n=40)
    cases = {
        "one fold": (study_body(cohort_id, folds=1), "folds"),
        "more folds than patients": (study_body(cohort_id, folds=20), "the smallest, label=1, sex="),
        "no configs": (study_body(cohort_id, configs=[]), "configs"),
        "a repeated config": (study_body(cohort_id, configs=[REFERENCE, {**REFERENCE}]), "repeats configs.0"),
        "another cohort": (
            study_body(cohort_id, configs=[REFERENCE, {**CANDIDATE, "cohort_id": other}]),
            "configs.1.cohort_id",
        ),
        "a config that does not fit": (
            study_body(cohort_id, configs=[REFERENCE, {**CANDIDATE, "sensitive_attributes": ["race"]}]),
            "configs.1.sensitive_attributes",
        ),
        "a fold plan of its own": (
            study_body(cohort_id, configs=[{**REFERENCE, "fold_plan": {"folds": 2, "fold": 0}}]),
            "configs.0.fold_plan",
        ),
        "too many jobs": (study_body(cohort_id, folds=5, seeds=7, final_models=True), "FAIRAUDIT_MAX_STUDY_JOBS"),
        "per-class thresholds per fold": (
            study_body(cohort_id, configs=[REFERENCE, {**CANDIDATE, "class_thresholds": True}]),
            "configs.1.class_thresholds",
        ),
    }
    for case, (body, named) in cases.items():
        response = client.post("/v1/studies", headers=headers, json=body)
        assert response.status_code == 422, (case, response.json())
        assert named in json.dumps(response.json()), (case, response.json())
    assert client.post("/v1/studies", headers=headers, json=study_body("coh_nope")).status_code == 404
    assert counts(session_factory) == (0, 0), "a refused study leaves no study and no job"


def test_a_two_fold_two_config_study_pools_every_sample_once_and_compares_paired(
    client, keys, settings, session_factory, run_jobs
):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    created = client.post("/v1/studies", headers=headers, json=study_body(cohort_id))
    assert created.status_code == 202, created.json()
    started = created.json()
    assert started["status"] == "running" and started["progress"] == 0
    assert sorted((c["config"], c["seed"], c["fold"]) for c in started["children"]) == [
        (0, 0, 0),
        (0, 0, 1),
        (1, 0, 0),
        (1, 0, 1),
    ]
    study = drive(client, headers, run_jobs, started["id"])
    assert study["status"] == "succeeded", study["error"]
    assert study["progress"] == 1 and all(c["status"] == "succeeded" for c in study["children"])
    child = client.get(f"/v1/jobs/{study['children'][0]['job_id']}", headers=headers).json()
    assert (child["kind"], child["study_id"]) == ("train", study["id"])
    listed = client.get("/v1/studies", headers=headers).json()["items"]
    assert [s["id"] for s in listed] == [study["id"]]

    cohort = client.get(f"/v1/cohorts/{cohort_id}", headers=headers).json()
    result = study["result"]
    for summary in result["configs"]:
        evaluation = client.get(f"/v1/evaluations/{summary['evaluation_id']}", headers=headers).json()
        assert (evaluation["kind"], evaluation["split"]) == ("study", "oof")
        assert evaluation["config"]["study_id"] == study["id"] and summary["missing"] == []
        pooled = load_predictions(evaluation_dir(settings, evaluation["id"]))
        ids = [str(i) for i in pooled.sample_ids]
        assert len(ids) == len(set(ids)) == cohort["n_items"], "every sample exactly once (one seed)"
        assert set(pooled.folds) == {"s0/f0", "s0/f1"}
        children = [c for c in study["children"] if c["config"] == summary["index"]]
        for child in children:
            held_out = load_predictions(evaluation_dir(settings, child["evaluation_id"]))
            mine = pooled.folds == f"s0/f{child['fold']}"
            assert [s.removeprefix("s0/") for s in pooled.sample_ids[mine]] == list(held_out.sample_ids)
            assert np.array_equal(pooled.y_true[mine], held_out.y_true)
            assert np.array_equal(pooled.exit_scores[mine], held_out.exit_scores), "each fold model's raw scores"
            assert np.array_equal(pooled.threshold[mine], np.full(mine.sum(), held_out.threshold)), (
                "a pooled sample is called at its own fold model's threshold"
            )
            assert summary["thresholds"][f"s0/f{child['fold']}"] == held_out.threshold
        patients = {str(c) for c in pooled.clusters}
        assert len(patients) == cohort["n_items"] // 2, "clusters are the patients (two images each)"
        recomputed = evaluate_predictions(pooled, attributes=evaluation["config"]["attributes"], settings=settings)
        assert json.loads(json.dumps(recomputed.report)) == evaluation["report"], (
            "the pooled report is the engine's report on the pooled predictions"
        )

    comparison = result["comparison"]["comparisons"][0]
    assert comparison["reference"].startswith("config 0") and comparison["model"].startswith("config 1")
    assert result["comparison"]["n_matched"] == cohort["n_items"], "paired on the same out-of-fold samples"
    metrics = {(d["attribute"], d["metric"]) for d in comparison["differences"]}
    assert {("overall", "auc"), ("sex", "pfd"), ("sex", "eopp1")} <= metrics
    compute = comparison["compute"]
    early_exit = load_predictions(evaluation_dir(settings, result["configs"][1]["evaluation_id"]))
    spent = early_exit.exit_cost[early_exit.exit_index].mean()  # the reference serves its final head: 1.0
    assert compute["difference"] == pytest.approx(spent - 1.0)
    assert compute["ci_low"] <= compute["difference"] <= compute["ci_high"]
    verdicts = {v["attribute"]: v["verdict"] for v in comparison["verdicts"]}
    assert set(verdicts) >= {"overall", "sex"}
    assert set(verdicts.values()) <= {"better", "worse", "mixed", "not distinguishable from noise"}

    events = client.get(f"/v1/studies/{study['id']}/events", headers=headers)
    assert "event: progress" in events.text and '"status": "succeeded"' in events.text and "event: end" in events.text


def test_cancelling_a_study_cancels_every_child(client, keys, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    study = client.post("/v1/studies", headers=headers, json=study_body(cohort_id, final_models=True)).json()
    assert len(study["children"]) == 2 * 2 + 2
    cancelled = client.post(f"/v1/studies/{study['id']}/cancel", headers=headers)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert {c["status"] for c in cancelled.json()["children"]} == {"cancelled"}
    again = client.post(f"/v1/studies/{study['id']}/cancel", headers=headers)
    assert again.status_code == 409 and "already ended" in again.json()["detail"]
    run_jobs()
    with session_factory() as session:
        statuses = set(session.scalars(select(Job.status).where(Job.study_id == study["id"])))
    assert statuses == {"cancelled"}, "nothing of a cancelled study runs"
    assert client.get(f"/v1/studies/{study['id']}", headers=headers).json()["status"] == "cancelled"


def test_the_job_list_filters_by_study_page_by_page(client, keys, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    mine = client.post("/v1/studies", headers=headers, json=study_body(cohort_id, final_models=True)).json()
    other = client.post("/v1/studies", headers=headers, json=study_body(cohort_id, configs=[REFERENCE])).json()
    children = {c["job_id"] for c in mine["children"]}
    assert len(children) == 6

    listed, cursor = [], None
    while True:
        params = {"study_id": mine["id"], "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", headers=headers, params=params).json()
        assert len(page["items"]) <= 4
        listed += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(listed) == len(children) and {j["id"] for j in listed} == children
    assert {j["study_id"] for j in listed} == {mine["id"]}
    narrowed = client.get("/v1/jobs", headers=headers, params={"study_id": other["id"], "kind": "train"}).json()
    assert {j["id"] for j in narrowed["items"]} == {c["job_id"] for c in other["children"]}
    elsewhere = client.get("/v1/jobs", headers=keys.headers(org="Elsewhere"), params={"study_id": mine["id"]})
    assert elsewhere.json()["items"] == [], "another organisation sees none of the study's jobs"
    too_long = client.get("/v1/jobs", headers=headers, params={"study_id": "s" * 65})
    assert too_long.status_code == 422 and "study_id" in json.dumps(too_long.json())
