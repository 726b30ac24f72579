"""Cohort uploads with bad images or DICOM files: refused at upload naming every bad file (nothing
left behind), and a cohort whose ingestion fails later keeps its error and frees its files."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
from archives import png_bytes, upload
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cohorts"))
from dicom_files import deflated_bomb, image_file, pixel_less

from app.cohorts.models import Cohort, CohortItem
from app.jobs.models import Job

DICOM_CONFIG = {"name": "dicom", "preset": "dicom", "image_size": 32, "split": {"mode": "random", "seed": 1}}
NOISE = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)


def archive(files: dict[str, bytes], manifest: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", manifest)
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def generic(files: dict[str, bytes], good: int = 12) -> bytes:
    """A generic-preset archive: ``good`` valid PNGs plus ``files``, all listed."""
    images = {**{f"img/ok{i}.png": png_bytes(i * 9) for i in range(good)}, **files}
    rows = [f"{name},{i % 2},{'female' if i % 3 else 'male'},{30 + i % 60},p{i}" for i, name in enumerate(images)]
    return archive(images, "image,label,sex,age,patient_id\n" + "\n".join(rows) + "\n")


def pil(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(NOISE).save(buffer, fmt)
    return buffer.getvalue()


def png_chunks(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def nothing_left(settings, session_factory) -> None:
    root = settings.data_dir / "cohorts"
    assert not root.exists() or list(root.iterdir()) == []
    with session_factory() as session:
        for model in (Cohort, CohortItem, Job):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_bad_images_are_refused_at_upload_naming_every_file(client, keys, settings, session_factory):
    """Issue 10, item 9: each of these got 202 and failed the ingestion job later."""
    jpeg = pil("JPEG")
    bad = {
        "img/truncated.png": png_bytes(7)[:60],
        "img/truncated.jpg": jpeg[: len(jpeg) // 2],
        "img/anim.gif": pil("GIF"),
        "img/scan.tif": pil("TIFF"),
        "img/huge.png": png_chunks(100_000, 100_000, zlib.compress(b"\0" * 64)),
        "img/empty.dcm": pixel_less(),
    }
    response = upload(client, keys.headers("auditor"), generic(bad))
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["detail"] == "6 image(s) cannot be used"
    named = {e["file"]: e["message"] for e in body["errors"]}
    assert set(named) == set(bad)
    assert "FAIRAUDIT_MAX_IMAGE_PIXELS" in named["img/huge.png"]
    assert "GIF" in named["img/anim.gif"] and "no pixel data" in named["img/empty.dcm"]
    nothing_left(settings, session_factory)


def test_the_list_of_bad_files_is_capped(client, keys, settings, session_factory):
    bad = {f"img/bad{i:03}.png": png_bytes(i)[:60] for i in range(130)}
    response = upload(client, keys.headers("auditor"), generic(bad, good=2))
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 101 and errors[-1] == {"message": "and 30 more image(s) that cannot be used"}
    nothing_left(settings, session_factory)


def test_a_dicom_bomb_in_a_cohort_is_413_naming_the_file(client, keys, settings, session_factory):
    """Issue 10, item 2: a 463 KB dicom cohort took +409 MB in the API process (measured on a real
    server in tests/serving/test_hostile_dicom.py)."""
    files = {"a.dcm": image_file(NOISE[..., 0]), "bomb.dcm": deflated_bomb(8000, 8000)}
    response = upload(
        client, keys.headers("auditor"), archive(files, "file,label\na.dcm,1\nbomb.dcm,0\n"), DICOM_CONFIG
    )
    assert response.status_code == 413, response.json()
    assert response.json()["errors"][0]["file"] == "bomb.dcm"
    nothing_left(settings, session_factory)


def test_patient_age_with_a_wrong_value_representation_is_422(client, keys, settings, session_factory):
    """Issue 10, item 5: answered 500."""
    good = image_file(NOISE[..., 0])
    at = good.index(b"\x10\x00\x10\x10AS")
    bad = good[:at] + b"\x10\x00\x10\x10FD\x04\x00abc\x00" + good[at + 12 :]
    files = {"a.dcm": good, "b.dcm": bad}
    response = upload(client, keys.headers("auditor"), archive(files, "file,label\na.dcm,1\nb.dcm,0\n"), DICOM_CONFIG)
    assert response.status_code == 422, response.json()
    [error] = response.json()["errors"]
    assert error["row"] == 3 and "b.dcm" in error["message"] and "PatientAge" in error["message"]
    nothing_left(settings, session_factory)


def test_a_failed_ingestion_keeps_its_error_and_frees_its_files(client, keys, settings, run_jobs):
    """A PNG whose header and end are fine but whose pixel data is corrupt passes the upload check and
    fails in the job: the cohort reads failed with the file named, and its folder is gone."""
    corrupt = png_chunks(40, 40, b"\x78\x9c" + b"\xff" * 200)
    response = upload(client, keys.headers("auditor"), generic({"img/corrupt.png": corrupt}))
    assert response.status_code == 202, response.json()
    cohort_id = response.json()["id"]
    assert (settings.data_dir / "cohorts" / cohort_id / "archive.zip").exists()
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{cohort_id}", headers=keys.headers("auditor")).json()
    assert cohort["status"] == "failed"
    assert [e["file"] for e in cohort["errors"]] == ["img/corrupt.png"]
    assert not (settings.data_dir / "cohorts" / cohort_id).exists()
