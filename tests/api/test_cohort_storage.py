"""What a cohort keeps on disk (issue 17): the upload keeps the archive as it came and extracts
nothing, checking the listed images' headers inside it; the ingestion job decodes straight from the
archive (each decoding process opens a zip itself; a tar.gz is streamed once and its members handed
over), then releases it, leaving the cache alone. At no point is there more than archive + cache."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from archives import make_zip, png_bytes, upload
from sqlalchemy import func, select

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import decode_image
from app.cohorts.models import Cohort, CohortItem
from app.jobs.models import Job


def as_tar_gz(zip_bytes: bytes, top: str = "") -> bytes:
    """The same files as a tar.gz, under the folder ``top`` (e.g. ``"cohort/"``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf, tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name in zf.namelist():
            data = zf.read(name)
            info = tarfile.TarInfo(top + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def file_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_upload_keeps_only_the_archive_and_ingestion_leaves_only_the_cache(client, keys, settings, run_jobs, kind):
    n = 30
    data = make_zip(n) if kind == "zip" else as_tar_gz(make_zip(n), top="cohort/")
    response = upload(client, keys.headers(), data)
    assert response.status_code == 202, response.json()
    folder = settings.data_dir / "cohorts" / response.json()["id"]
    assert tree(folder) == [f"archive.{kind}"], "nothing extracted, no manifest left, no upload.bin"
    assert (folder / f"archive.{kind}").read_bytes() == data
    assert file_bytes(folder) == len(data)

    run_jobs()
    cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=keys.headers()).json()
    assert cohort["status"] == "ready", cohort
    assert tree(folder) == ["cache", "cache/images.u8", "cache/items.json"]
    arrays = load_cohort_arrays(folder / "cache")
    assert file_bytes(folder) == arrays.images.nbytes + (folder / "cache" / "items.json").stat().st_size
    for row, item_id in enumerate(arrays.item_ids):
        i = int(item_id.removeprefix("img/").removesuffix(".png"))
        expected = decode_image(png_bytes(i * 3 % 256), 32, 3, ImageLimits())
        assert np.array_equal(arrays.images[row], expected), item_id


def test_bad_images_in_a_tar_gz_are_named_at_upload_and_nothing_is_kept(client, keys, settings, session_factory):
    """The header checks read the members from the tar stream: every bad one is named, in row order."""
    images = {f"img/ok{i}.png": png_bytes(i * 9) for i in range(8)}
    images["img/truncated.png"] = png_bytes(7)[:60]
    images["img/anim.gif"] = b"GIF89a" + bytes(40)
    images["img/ok9.png"] = png_bytes(90)
    rows = [f"{name},{i % 2},female,40,p{i}" for i, name in enumerate(images)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", "image,label,sex,age,patient_id\n" + "\n".join(rows) + "\n")
        for name, content in images.items():
            zf.writestr(name, content)
    response = upload(client, keys.headers(), as_tar_gz(buffer.getvalue(), top="cohort/"))
    assert response.status_code == 422, response.json()
    assert [(e["row"], e["file"]) for e in response.json()["errors"]] == [
        (10, "img/truncated.png"),
        (11, "img/anim.gif"),
    ]
    assert "no IEND chunk" in response.json()["errors"][0]["message"]
    assert "GIF" in response.json()["errors"][1]["message"]
    root = settings.data_dir / "cohorts"
    assert not root.exists() or list(root.iterdir()) == []
    with session_factory() as session:
        for model in (Cohort, CohortItem, Job):
            assert session.scalar(select(func.count()).select_from(model)) == 0
