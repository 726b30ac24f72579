"""The IC head option through the API: a bad value is a 422 naming the field, a pooled run's model
says so (model description and model.json), models stored before the option read as the paper head,
and a teacher with the other head is refused before anything is queued."""

from __future__ import annotations

import json

from archives import TRAIN, make_zip, upload
from sqlalchemy import func, select
from support import insert_model_version

from app.jobs.models import Job
from app.training.config import TrainingConfig


def add_model(session_factory, model_id: str, cohort_id: str, exits: int, config: dict) -> None:
    files = {"full.onnx": "0" * 64, "weights.pt": "1" * 64}
    thresholds = {"operating": 0.5, "exits": [0.9] * (exits - 1) + [None], "rule": None}
    insert_model_version(session_factory, model_id, "St Elsewhere", cohort_id, config, files, thresholds)


def test_the_ic_head_option_through_the_api(client, keys, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = upload(client, headers, make_zip(120)).json()["id"]
    run_jobs()

    bad = client.post("/v1/jobs", headers=headers, json={**TRAIN, "cohort_id": cohort_id, "ic_head": "tiny"})
    assert bad.status_code == 422, bad.json()
    assert [e["field"].removeprefix("body.") for e in bad.json()["errors"]] == ["ic_head"]

    # models stored before the option: no ic_head in their config means the paper's head
    older = {**TRAIN, "image_size": 32}
    add_model(session_factory, "mdl_older", cohort_id, 5, older)
    add_model(session_factory, "mdl_older_erm", cohort_id, 1, {**older, "method": "erm"})
    assert client.get("/v1/models/mdl_older", headers=headers).json()["ic_head"] == "paper"
    assert client.get("/v1/models/mdl_older_erm", headers=headers).json()["ic_head"] is None

    # a teacher with the paper head cannot teach a pooled run (same parameter shapes, other features)
    teacher = TrainingConfig.model_validate({**older, "method": "fair_multi_exit", "keep_weights": True})
    add_model(session_factory, "mdl_teacher", cohort_id, 5, teacher.model_dump(mode="json"))
    body = {**TRAIN, "cohort_id": cohort_id, "method": None, "multi_exit": True, "ic_head": "pooled"}
    body["terms"] = [{"name": "mfd", "teacher_model_version_id": "mdl_teacher"}]
    refused = client.post("/v1/jobs", headers=headers, json=body)
    assert refused.status_code == 422, refused.json()
    (error,) = refused.json()["errors"]
    assert error["field"] == "terms.0.teacher_model_version_id" and "ic_head 'paper'" in error["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).where(Job.kind == "train")) == 0

    started = client.post(
        "/v1/jobs", headers=headers, json={**TRAIN, "cohort_id": cohort_id, "epochs": 1, "ic_head": "pooled"}
    )
    assert started.status_code == 202, started.json()
    run_jobs(timeout=300)
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"]
    model_id = job["result"]["model_version_id"]
    model = client.get(f"/v1/models/{model_id}", headers=headers).json()
    assert model["ic_head"] == "pooled" and model["config"]["ic_head"] == "pooled"
    manifest = json.loads(client.get(f"/v1/models/{model_id}/onnx?file=model.json", headers=headers).content)
    assert manifest["architecture"]["ic_head_kind"] == "pooled"
    assert manifest["architecture"]["ic_head"].startswith("adaptive avg-pool to p x p, conv3x3")
    listed = client.get("/v1/models", headers=headers).json()["items"]
    assert {m["id"]: m["ic_head"] for m in listed} == {
        model_id: "pooled",
        "mdl_older": "paper",
        "mdl_older_erm": None,
        "mdl_teacher": "paper",
    }
