"""Cohort upload and ingestion over HTTP, with real archives, a real database and real job processes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from archives import CONFIG, make_zip, png_bytes, upload
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.models import Cohort, CohortItem
from app.jobs.models import Job


def cohort_folders(settings) -> list[Path]:
    root = settings.data_dir / "cohorts"
    return list(root.iterdir()) if root.exists() else []


def count_rows(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_upload_ingests_into_a_ready_cohort_with_a_summary(client, keys, settings, run_jobs, session_factory):
    headers = keys.headers("auditor")
    response = upload(client, headers, make_zip(60))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "ingesting" and body["n_items"] == 60
    assert set(body["attributes"]) == {"sex", "age_group"}

    run_jobs()
    cohort = client.get(f"/v1/cohorts/{body['id']}", headers=headers).json()
    assert cohort["status"] == "ready", cohort
    assert cohort["progress"] == 1.0
    summary = cohort["summary"]
    assert summary["n"] == 60
    assert sum(s["n"] for s in summary["splits"].values()) == 60
    sex_cells = summary["groupings"]["sex"]["cells"]
    assert sum(c["count"] for c in sex_cells) == 60
    assert sum(c["count"] for c in sex_cells if c["group"] == {"sex": "male"}) == 20
    assert summary["warnings"], "groups of 60 images are too small for stable metrics"

    arrays = load_cohort_arrays(settings.data_dir / "cohorts" / body["id"] / "cache")
    assert arrays.images.shape == (60, 32, 32, 3)
    assert set(arrays.split) <= {"train", "val", "test"}
    with session_factory() as session:
        items = session.scalars(select(CohortItem).where(CohortItem.cohort_id == body["id"])).all()
    by_patient: dict[str, set[str]] = {}
    for item in items:
        by_patient.setdefault(item.patient_key, set()).add(item.split)
        expected = int(Path(item.image_path).stem) * 3 % 256  # each image is one flat grey value
        assert np.all(arrays.images[item.position] == expected), item.image_path
    assert all(len(splits) == 1 for splits in by_patient.values()), "a patient spans two splits"


def test_bad_manifest_is_rejected_with_every_row_named_and_nothing_left(client, keys, settings, session_factory):
    headers = keys.headers("auditor")
    manifest = (
        "image,label,sex,age,patient_id\nimg/0.png,1,male,40,p0\nimg/1.png,yes,male,41,p1\n"
        "img/0.png,0,female,42,p2\nimg/missing.png,0,female,43,p3\n"
    )
    response = upload(client, headers, make_zip(2, manifest=manifest))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    text = json.dumps(response.json()["errors"])
    assert "yes" in text and "missing.png" in text and "img/0.png" in text
    assert cohort_folders(settings) == []
    assert count_rows(session_factory, Cohort) == 0 and count_rows(session_factory, Job) == 0


def test_not_an_archive_and_path_escape_are_400(client, keys, settings):
    headers = keys.headers("auditor")
    assert upload(client, headers, b"definitely not a zip").status_code == 400
    escaping = make_zip(4, extra={"../evil.png": png_bytes(1)})
    response = upload(client, headers, escaping)
    assert response.status_code == 400 and "evil.png" in response.json()["detail"] + json.dumps(
        response.json().get("errors", [])
    )
    assert cohort_folders(settings) == []


def test_unknown_preset_and_bad_config_are_422(client, keys):
    headers = keys.headers("auditor")
    response = upload(client, headers, make_zip(4), {**CONFIG, "preset": "mimic"})
    assert response.status_code == 422 and "generic" in json.dumps(response.json())
    assert upload(client, headers, make_zip(4), None).status_code == 202  # control: the same archive is fine


def test_upload_over_the_size_limit_is_413_before_parsing(settings, keys, session_factory):
    from app.main import create_app

    small = settings.model_copy(update={"max_upload_bytes": 2_000})
    with TestClient(create_app(small, run_supervisor=False)) as client:
        response = upload(client, keys.headers("auditor"), make_zip(30))
    assert response.status_code == 413
    assert cohort_folders(settings) == []
    assert count_rows(session_factory, Cohort) == 0


def test_roles_and_organisations(client, keys):
    auditor = keys.headers("auditor", org="A")
    created = upload(client, auditor, make_zip(4)).json()
    assert client.get(f"/v1/cohorts/{created['id']}", headers=keys.headers("auditor", org="B")).status_code == 404
    assert client.delete(f"/v1/cohorts/{created['id']}", headers=keys.headers("admin", org="B")).status_code == 404
    assert upload(client, keys.headers("predictor", org="A"), make_zip(4)).status_code == 403
    assert client.get("/v1/cohorts", headers=auditor).json()["items"][0]["id"] == created["id"]
    assert client.get("/v1/cohorts", headers=keys.headers("auditor", org="B")).json()["items"] == []


def test_delete_removes_images_and_cache(client, keys, settings, run_jobs):
    headers = keys.headers("auditor")
    created = upload(client, headers, make_zip(20)).json()
    run_jobs()
    assert (settings.data_dir / "cohorts" / created["id"] / "cache").exists()
    response = client.delete(f"/v1/cohorts/{created['id']}", headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "deleted"
    assert not (settings.data_dir / "cohorts" / created["id"]).exists()
    assert client.get(f"/v1/cohorts/{created['id']}", headers=headers).status_code == 404


def test_undecodable_image_fails_ingestion_cleanly(client, keys, settings, run_jobs):
    headers = keys.headers("auditor")
    data = make_zip(10, extra={})
    # replace one image with a truncated PNG
    src = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for info in src.infolist():
            payload = src.read(info)
            zf.writestr(info.filename, payload[: len(payload) // 2] if info.filename == "img/3.png" else payload)
    response = upload(client, headers, buffer.getvalue())
    if response.status_code == 202:  # decoding errors surface in the ingestion job
        run_jobs()
        cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=headers).json()
        assert cohort["status"] == "failed" and "img/3.png" in json.dumps(cohort["errors"])
        assert not (settings.data_dir / "cohorts" / response.json()["id"] / "cache").exists()
    else:
        assert response.status_code in (400, 422) and "img/3.png" in json.dumps(response.json())
