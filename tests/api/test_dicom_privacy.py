"""Patient identifiers on disk (issue 10, item 10): once a dicom cohort is ingested no file under the
data folder holds a patient's name, ID, birth date, accession number or institution, everything the
service created is owner-only, and with ``keep_sources`` the kept files are de-identified."""

from __future__ import annotations

import io
import json
import stat
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pydicom
from archives import upload
from live_server import live_server, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cohorts"))
from dicom_files import IDENTIFIERS, image_file, tags_present

from app.cohorts.dicom import decode_dicom
from app.cohorts.image_limits import ImageLimits
from app.models import Base  # every table, for database_text

CONFIG = {"name": "dicom", "preset": "dicom", "image_size": 32, "split": {"mode": "random", "seed": 1}}


def dicom_archive(n: int = 12) -> tuple[bytes, dict[str, bytes]]:
    rng = np.random.default_rng(4)
    files = {f"scans/{i}.dcm": image_file(rng.integers(0, 255, (40, 48), dtype=np.uint8)) for i in range(n)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", "file,label\n" + "".join(f"{name},{i % 2}\n" for i, name in enumerate(files)))
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue(), files


def identifiers_on_disk(*roots: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if path.is_file() and (tags := tags_present(path.read_bytes())):
                found[str(path)] = tags
    return found


def test_originals_are_deleted_after_ingestion_and_files_are_owner_only(settings, keys):
    archive, _ = dicom_archive()
    headers = keys.headers("auditor")
    with live_server(settings) as server:
        response = httpx.post(
            f"{server.url}/v1/cohorts",
            headers=headers,
            files={"archive": ("cohort.zip", archive, "application/zip")},
            data={"config": json.dumps(CONFIG)},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        cohort_id = response.json()["id"]

        def ready() -> dict | None:
            body = httpx.get(f"{server.url}/v1/cohorts/{cohort_id}", headers=headers, timeout=10).json()
            assert body["status"] != "failed", body
            return body if body["status"] == "ready" else None

        wait_for(ready, timeout=120)

    folder = settings.data_dir / "cohorts" / cohort_id
    assert (folder / "cache" / "images.u8").exists() and not (folder / "files").exists()
    database = [Path(settings.database_url.removeprefix("sqlite:///"))] if settings.is_sqlite else []
    assert identifiers_on_disk(settings.data_dir, *database) == {}
    loose = [
        f"{p} {stat.filemode(p.stat().st_mode)}"
        for p in [settings.data_dir, *settings.data_dir.rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert loose == [], "group/other permissions on files the service created"


def test_keep_sources_keeps_the_images_de_identified(client, keys, settings, run_jobs):
    archive, originals = dicom_archive(6)
    response = upload(client, keys.headers("auditor"), archive, {**CONFIG, "keep_sources": True})
    assert response.status_code == 202, response.json()
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=keys.headers("auditor")).json()
    assert cohort["status"] == "ready", cohort
    files = settings.data_dir / "cohorts" / cohort["id"] / "files"
    kept = sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file())
    assert kept == sorted(originals), "the listed images stay; the manifest goes"
    assert identifiers_on_disk(settings.data_dir) == {}
    studies = set()
    for name, original in originals.items():
        ds = pydicom.dcmread(files / name)
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert all(str(ds.get(keyword, "")) == "" for keyword in IDENTIFIERS if keyword != "InstitutionName")
        assert "InstitutionName" not in ds and "PatientAge" not in ds
        assert not [element for element in ds if element.tag.is_private]
        assert ds.SOPInstanceUID != pydicom.dcmread(io.BytesIO(original)).SOPInstanceUID
        studies.add(ds.StudyInstanceUID)
        assert np.array_equal(decode_dicom(files / name, ImageLimits()), decode_dicom(original, ImageLimits()))
    assert len(studies) == len(originals)  # each original was its own study; new UIDs keep them apart


SITES = [
    {
        "InstitutionName": "St Elsewhere General Hospital",
        "StationName": "CT-ROOM-7-XYZ",
        "Manufacturer": "ACME Imaging",
    },
    {"InstitutionName": "Mercy West Medical Center", "StationName": "XR-BAY-2-QRS", "Manufacturer": "Globex Medical"},
]
IDENTIFYING = [site[k] for site in SITES for k in ("InstitutionName", "StationName")]


def database_text(session_factory) -> str:
    """Every row of every table, as text: what the database holds, on SQLite and PostgreSQL alike."""
    with session_factory() as session:
        return "\n".join(
            str(row) for table in Base.metadata.sorted_tables for row in session.execute(table.select()).all()
        )


def test_dicom_tags_are_attributes_and_identifying_ones_are_stored_only_hashed(
    client, keys, settings, session_factory, run_jobs
):
    rng = np.random.default_rng(5)
    files = {
        f"scans/{i}.dcm": image_file(rng.integers(0, 255, (24, 24), dtype=np.uint8), **SITES[i % 2]) for i in range(12)
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", "file,label\n" + "".join(f"{name},{i // 2 % 2}\n" for i, name in enumerate(files)))
        for name, data in files.items():
            zf.writestr(name, data)
    tags = ["InstitutionName", "StationName", "Manufacturer"]
    headers = keys.headers()
    response = upload(client, headers, buffer.getvalue(), {**CONFIG, "dicom_tags": tags})
    assert response.status_code == 202, response.json()
    assert response.json()["attributes"] == ["sex", "age_group", *tags]
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=headers).json()
    assert cohort["status"] == "ready", cohort
    groupings = cohort["summary"]["groupings"]
    sites = {c["group"]["InstitutionName"] for c in groupings["InstitutionName"]["cells"]}
    assert len(sites) == 2 and all(len(s) == 16 and int(s, 16) >= 0 for s in sites), "two sites, as hashes"
    assert {c["group"]["Manufacturer"] for c in groupings["Manufacturer"]["cells"]} == {
        "ACME Imaging",
        "Globex Medical",
    }

    on_disk = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    database = database_text(session_factory)
    if settings.is_sqlite:
        on_disk += Path(settings.database_url.removeprefix("sqlite:///")).read_bytes()
    assert b"Globex Medical" in on_disk and "Globex Medical" in database, "the check sees values that are kept"
    for raw in IDENTIFYING:
        assert raw.encode() not in on_disk and raw not in database, raw


def test_dicom_tags_belong_to_the_dicom_preset_and_the_allow_list(client, keys):
    headers = keys.headers()
    archive, _ = dicom_archive(2)
    for config, field in (
        ({**CONFIG, "dicom_tags": ["PatientName"]}, "dicom_tags.0"),
        ({**CONFIG, "preset": "fitzpatrick17k", "dicom_tags": ["Manufacturer"]}, "config"),
    ):
        response = upload(client, headers, archive, config)
        assert response.status_code == 422, response.json()
        assert response.json()["errors"][0]["field"] == field, response.json()
