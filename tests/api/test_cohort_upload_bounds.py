"""Hostile manifests and archives over HTTP: a clear 4xx naming the problem, a bounded body, and
nothing left behind; nothing of an archive is ever extracted (it is kept as it came)."""

from __future__ import annotations

import io
import zipfile

from archives import make_zip, png_bytes, upload
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.models import Cohort
from app.jobs.models import Job
from app.main import create_app


def nothing_left(settings, session_factory) -> bool:
    folders = list((settings.data_dir / "cohorts").iterdir()) if (settings.data_dir / "cohorts").exists() else []
    with session_factory() as session:
        rows = sum(session.scalar(select(func.count()).select_from(m)) for m in (Cohort, Job))
    return folders == [] and rows == 0


def manifest_zip(manifest: str, images: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", manifest)
        for name in images:
            zf.writestr(name, png_bytes(7))
    return buffer.getvalue()


def test_cell_over_the_csv_field_limit_is_a_named_4xx(client, keys, settings, session_factory):
    """131,073 characters in a header cell answered 500 (an unnamed 422 in a row)."""
    headers = keys.headers()
    big = "x" * 131_073
    in_row = manifest_zip(f"image,label,sex,age,patient_id\na.png,1,{big},40,p1\n", ["a.png"])
    response = upload(client, headers, in_row)
    assert response.status_code == 413, response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"row": 2, "column": "sex", "message": "131,073 characters"}]
    in_header = manifest_zip(f"image,label,sex,age,patient_id,{big}\na.png,1,f,40,p1,\n", ["a.png"])
    response = upload(client, headers, in_header)
    assert response.status_code == 413
    assert response.json()["errors"][0]["row"] == 1
    assert nothing_left(settings, session_factory)


def test_a_million_problem_rows_give_a_capped_answer(client, keys, settings, session_factory):
    """Every row names a missing image: the answer lists the first 200 and counts the rest (a million
    such rows gave a 126 MB body)."""
    rows = "".join(f"gone{i}.png,1,f,40,p{i}\n" for i in range(5000))
    response = upload(client, keys.headers(), manifest_zip("image,label,sex,age,patient_id\n" + rows, ["a.png"]))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "the manifest has 5,000 problem(s) (the first 200 listed)"
    assert len(body["errors"]) == 201
    assert body["errors"][-1] == {"message": "and 4,800 more problem(s) not listed"}
    assert len(response.content) < 40_000
    assert nothing_left(settings, session_factory)


def test_wide_header_is_413(client, keys, settings, session_factory):
    header = "image,label,sex,age,patient_id," + ",".join(f"c{i}" for i in range(2000))
    response = upload(client, keys.headers(), manifest_zip(header + "\n", ["a.png"]))
    assert response.status_code == 413
    assert "2,005 columns, above the limit of 1,000" in response.json()["detail"]
    assert nothing_left(settings, session_factory)


def test_entry_count_over_the_limit_is_413_from_the_end_record(settings, keys, session_factory):
    few = settings.model_copy(update={"max_archive_entries": 30})
    with TestClient(create_app(few, run_supervisor=False)) as client:
        response = upload(client, keys.headers(), make_zip(40))
    assert response.status_code == 413
    assert response.json()["detail"] == "the archive has 41 entries, above 30"
    assert nothing_left(settings, session_factory)


def test_unlisted_files_are_never_written(client, keys, settings, run_jobs):
    """100,000 unlisted empty files used to be extracted and kept; now nothing is extracted at all:
    the upload keeps the archive as it came."""
    junk = {f"junk/{i}.bin": b"" for i in range(300)} | {"notes.txt": b"hello"}
    archive = make_zip(20, extra=junk)
    response = upload(client, keys.headers(), archive)
    assert response.status_code == 202, response.json()
    body = response.json()
    folder = settings.data_dir / "cohorts" / body["id"]
    assert [p.name for p in folder.iterdir()] == ["archive.zip"]
    assert (folder / "archive.zip").read_bytes() == archive
    assert body["warnings"][-1] == {"message": "and 201 more unlisted files (ignored)"}
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{body['id']}", headers=keys.headers()).json()
    assert cohort["status"] == "ready", cohort


def test_rows_dropped_by_the_label_policy_are_not_ingested(client, keys, settings, run_jobs):
    config = {"name": "cxr", "preset": "chexpert", "finding_column": "Edema", "image_size": 32}
    manifest = "Path,Sex,Age,Edema\n" + "".join(
        f"img/{i}.png,Female,50,{-1 if i == 3 else i % 2}\n" for i in range(12)
    )  # -1 (uncertain) is dropped by the default policy
    response = upload(client, keys.headers(), make_zip(12, manifest=manifest), config)
    assert response.status_code == 202, response.json()
    assert response.json()["n_items"] == 11
    run_jobs()
    cache = settings.data_dir / "cohorts" / response.json()["id"] / "cache"
    assert load_cohort_arrays(cache).images.shape[0] == 11


def test_config_errors_are_capped(client, keys, settings, session_factory):
    config = {"name": "x", "image_column": "image", "label_column": "label", "sensitive_attributes": [{}] * 1000}
    response = upload(client, keys.headers(), make_zip(2), config)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "invalid cohort config (the first 200 listed)"
    assert body["errors"][0]["field"] == "sensitive_attributes.0"
    assert body["errors"][-1] == {"message": "and 800 more problem(s) not listed"}
    assert nothing_left(settings, session_factory)
