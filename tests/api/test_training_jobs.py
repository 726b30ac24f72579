"""Training jobs end to end: HTTP → queue → real job process → model version + evaluation."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from archives import TRAIN, make_zip, upload
from sqlalchemy import func, select

from app.fairness.models import Evaluation, MetricRow
from app.jobs.models import Job
from app.serving.models import ModelVersion


def ready_cohort(client, headers, run_jobs, n: int = 120) -> str:
    cohort = upload(client, headers, make_zip(n)).json()
    run_jobs()
    return cohort["id"]


def test_training_job_registers_model_and_evaluation_together(client, keys, settings, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    response = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort_id, **TRAIN})
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    run_jobs(timeout=300)

    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"]
    assert [h["epoch"] for h in job["history"]] == [1, 2]
    assert all(h["val_auc"] is None or 0 <= h["val_auc"] <= 1 for h in job["history"])
    model_id, evaluation_id = job["result"]["model_version_id"], job["result"]["evaluation_id"]
    with session_factory() as session:
        model = session.get(ModelVersion, model_id)
        evaluation = session.get(Evaluation, evaluation_id)
        rows = session.scalar(select(func.count()).where(MetricRow.evaluation_id == evaluation_id))
        named = session.get(Job, job_id).model_version_id  # given when the job was queued
    assert model is not None and evaluation is not None and evaluation.model_version_id == model_id
    assert model.job_id == job_id and named == model_id
    assert rows > 100
    folder = settings.model_dir / model.path
    assert (folder / "model.json").exists() and set(model.files) <= {p.name for p in folder.iterdir()}
    assert len(model.thresholds["exits"]) == 5
    rule = model.thresholds["rule"]  # the manifest's record of the operating threshold's choice
    assert rule["rule"] == "youden" and rule["chosen_on"] == "val"
    assert [g["group"] for g in rule["operating_point"]["groups"]] == ["female", "male"]
    html = client.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers).text
    assert "Youden&#39;s J (largest TPR − FPR), chosen on the validation split" in html
    assert "When the threshold was chosen (validation split), by sex" in html
    card = client.get(f"/v1/evaluations/{evaluation_id}/model-card", headers=headers).json()
    assert card["fairaudit"]["thresholds"]["rule_record"] == rule
    assert not list(settings.model_dir.glob(".staging-*")), "staging folders must not outlive the job"

    # the test predictions carry the patient (make_zip: two images per patient), hashed in the download
    download = client.get(f"/v1/evaluations/{evaluation_id}/predictions.csv", headers=headers)
    assert download.status_code == 200
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert len(table) == evaluation.report["population"]["n"] and all(r["patient"] for r in table)
    patient_of = {r["sample_id"]: r["patient"] for r in table}
    pairs = [(f"img/{2 * k}.png", f"img/{2 * k + 1}.png") for k in range(60)]
    together = [(a, b) for a, b in pairs if a in patient_of and b in patient_of]
    assert together and all(patient_of[a] == patient_of[b] for a, b in together)
    assert len({patient_of[a] for a, _ in together}) == len(together)

    # external validation through the served ONNX graph, on the same test split, pairs with the training one
    started = client.post(
        f"/v1/models/{model_id}/evaluate", headers=headers, json={"cohort_id": cohort_id, "split": "test"}
    )
    assert started.status_code == 202, started.json()
    run_jobs(timeout=120)
    external_job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert external_job["status"] == "succeeded", external_job["error"]
    external = client.get(f"/v1/evaluations/{external_job['result']['evaluation_id']}", headers=headers).json()
    internal = client.get(f"/v1/evaluations/{evaluation_id}", headers=headers).json()
    assert external["kind"] == "external" and external["model_files"] == model.files
    overall = [
        next(g for g in e["report"]["evaluations"][-1]["groupings"] if g["attribute"] == "overall")
        for e in (internal, external)
    ]
    auc_internal, auc_external = (o["groups"][0]["metrics"]["auc"]["value"] for o in overall)
    assert abs(auc_internal - auc_external) < 1e-4, "ONNX serving graph and PyTorch evaluation must agree"
    comparison = client.post(
        "/v1/compare", headers=headers, json={"evaluation_ids": [evaluation_id, external["id"]], "n_boot": 100}
    ).json()
    assert comparison["n_matched"] == internal["report"]["population"]["n"]


def test_bad_training_configs_are_rejected_before_queueing(client, keys, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs, n=60)
    cases = {
        "backbone": {**TRAIN, "backbone": "densenet"},
        "method": {**TRAIN, "method": "magic"},
        "sensitive_attributes": {**TRAIN, "sensitive_attributes": ["race"]},
        "batch_size": {**TRAIN, "batch_size": 4000},
        "target_sensitivity": {**TRAIN, "threshold_rule": "target_sensitivity"},
        "threshold_constraint": {**TRAIN, "threshold_rule": "constrained"},
        "threshold_constraint.attribute": {
            **TRAIN,
            "threshold_rule": "constrained",
            "threshold_constraint": {"attribute": "race", "fpr_band": 0.1},
        },
        "threshold_constraint.min_group_count": {
            **TRAIN,
            "threshold_rule": "constrained",
            "threshold_constraint": {"fpr_band": 0.1, "min_group_count": 1000},
        },
    }
    for field, body in cases.items():
        response = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort_id, **body})
        assert response.status_code == 422, (field, response.json())
        named = [e.get("field", "").removeprefix("body.") for e in response.json()["errors"]]
        assert field in named, (field, response.json())
    missing = client.post("/v1/jobs", headers=headers, json={"cohort_id": "coh_nope", **TRAIN})
    assert missing.status_code == 404
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(Job.kind == "train")) == 0


def test_training_on_a_cohort_still_ingesting_is_409(client, keys):
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(20)).json()
    response = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort["id"], **TRAIN})
    assert response.status_code == 409 and "ingesting" in response.json()["detail"]


def test_model_files_are_not_left_when_a_job_fails(client, keys, settings, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs, n=60)
    job_id = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort_id, **TRAIN}).json()["id"]
    # the cohort's cache disappears under the queued job: the run fails inside the child
    import shutil

    shutil.rmtree(settings.data_dir / "cohorts" / cohort_id / "cache")
    run_jobs(timeout=120)
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "failed" and job["error"] and "Traceback" not in job["error"]
    assert str(settings.data_dir.resolve()) not in job["error"], "a job's error must not reveal server paths"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
    assert not settings.model_dir.exists() or list(Path(settings.model_dir).iterdir()) == []
