"""An mfd run's teacher is checked where the job is created: nothing is queued for a teacher of another
organisation, cohort or architecture, or one kept without its PyTorch weights."""

from __future__ import annotations

from archives import TRAIN, make_zip, upload
from sqlalchemy import func, select
from support import insert_model_version

from app.jobs.models import Job
from app.training.config import TrainingConfig

FIELD = "terms.0.teacher_model_version_id"


def add_model(session_factory, model_id: str, organisation: str, cohort_id: str, weights: bool, **config) -> None:
    trained = TrainingConfig.model_validate({**TRAIN, "image_size": 32, **config}).model_dump(mode="json")
    files = {"full.onnx": "0" * 64, **({"weights.pt": "1" * 64} if weights else {})}
    insert_model_version(session_factory, model_id, organisation, cohort_id, trained, files, thresholds={})


def test_a_teacher_is_refused_before_anything_is_queued(client, keys, session_factory, run_jobs):
    headers = keys.headers()
    cohort_id = upload(client, headers, make_zip(120)).json()["id"]
    run_jobs()
    add_model(session_factory, "mdl_elsewhere", "Other Hospital", cohort_id, weights=True)
    add_model(session_factory, "mdl_vgg", "St Elsewhere", cohort_id, weights=False, backbone="vgg11")
    add_model(session_factory, "mdl_good", "St Elsewhere", cohort_id, weights=True)
    with session_factory() as session:
        queued = session.scalar(select(func.count()).select_from(Job))

    def start(teacher: str, **overrides: object):
        body = {**TRAIN, "cohort_id": cohort_id, "method": None, "multi_exit": True, **overrides}
        body["terms"] = [{"name": "mfd", "teacher_model_version_id": teacher}]
        return client.post("/v1/jobs", headers=headers, json=body)

    foreign = start("mdl_elsewhere")
    assert foreign.status_code == 422
    assert foreign.json()["errors"] == [
        {"field": FIELD, "message": "no model version 'mdl_elsewhere' in this organisation"}
    ]
    other = start("mdl_vgg")
    assert other.status_code == 422
    messages = [e["message"] for e in other.json()["errors"] if e["field"] == FIELD]
    assert any("backbone 'vgg11' (this run: 'small')" in m for m in messages)
    assert any("without keep_weights" in m for m in messages)
    single = start("mdl_good", multi_exit=False)
    assert single.status_code == 422 and "multi_exit True (this run: False)" in single.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == queued
    accepted = start("mdl_good")
    assert accepted.status_code == 202, accepted.json()
    assert accepted.json()["method"] == "multi_exit+mfd"
