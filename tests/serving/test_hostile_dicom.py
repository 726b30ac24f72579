"""DICOM bombs against a real server process: every one is a 413 naming the file, answered from the
header, and the server's peak memory grows by less than 100 MB (issue 10, item 2: a 1 MB deflated
DICOM to predict took ~2 GB, a 125 KB 64-megapixel one +1.3 GB, a 463 KB dicom cohort +409 MB)."""

from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
from live_server import live_server
from serving_helpers import image_bytes
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cohorts"))
from dicom_files import deflated_bomb, image_file

from app.cohorts.models import Cohort
from app.serving.models import Prediction

T = TypeVar("T")
MB = 1024 * 1024
BOMBS = {
    "125 KB, one 64-megapixel frame": lambda: deflated_bomb(8000, 8000),
    "1 MB, 1 GB inflated": lambda: deflated_bomb(8000, 8000, frames=8),
}


def kib(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def peak_growth(pid: int, action: Callable[[], T]) -> tuple[T, int]:
    """``action()``'s result and how far the process's peak RSS rose above its RSS before it."""
    before = kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    result = action()
    return result, kib(pid, "VmHWM") - before


def predict(url: str, headers: dict[str, str], data: bytes, as_json: bool) -> httpx.Response:
    if as_json:
        body = {"images": [{"data": base64.b64encode(data).decode(), "name": "scan.dcm"}]}
        return httpx.post(url, headers=headers, json=body, timeout=60)
    return httpx.post(url, headers=headers, files=[("images", ("scan.dcm", data, "application/dicom"))], timeout=60)


def dicom_cohort(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", "file,label\n" + "".join(f"{name},{i % 2}\n" for i, name in enumerate(files)))
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def upload(server_url: str, headers: dict[str, str], archive: bytes) -> httpx.Response:
    config = json.dumps({"name": "bombs", "preset": "dicom", "image_size": 32})
    files = {"archive": ("cohort.zip", archive, "application/zip")}
    return httpx.post(f"{server_url}/v1/cohorts", headers=headers, files=files, data={"config": config}, timeout=60)


def test_dicom_bombs_are_413_and_the_server_stays_small(served, settings, session_factory):
    grey = np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8)
    cohorts_before = set((settings.data_dir / "cohorts").glob("*"))
    with session_factory() as session:
        rows_before = session.scalar(select(func.count()).select_from(Cohort))
    with live_server(settings, extra_env={"FAIRAUDIT_MAX_IMAGE_PIXELS": "64000000"}) as server:
        url = f"{server.url}/v1/models/{served.id}/predict"
        for data in (image_bytes(grey), image_file(grey)):  # warm up: the model session, pydicom's imports
            assert predict(url, served.headers, data, as_json=False).status_code == 200
        assert upload(server.url, served.headers, dicom_cohort({"a.dcm": b"not dicom"})).status_code == 422
        for name, make in BOMBS.items():
            bomb = make()
            for as_json in (False, True):
                response, growth = peak_growth(
                    server.pid, lambda bomb=bomb, as_json=as_json: predict(url, served.headers, bomb, as_json)
                )
                print(f"predict {name} (json={as_json}): {response.status_code}, peak RSS +{growth / MB:.1f} MB")
                assert response.status_code == 413, (name, response.text)
                assert response.json()["errors"][0]["file"] == "scan.dcm"
                assert "FAIRAUDIT_MAX_COMPRESSION_RATIO" in response.text
                assert growth < 100 * MB, f"{name} (json={as_json}): peak RSS +{growth / MB:.0f} MB"

        archive = dicom_cohort(
            {"a.dcm": image_file(grey), **{f"bomb{i}.dcm": deflated_bomb(8000, 8000) for i in range(3)}}
        )
        assert 350_000 < len(archive) < 600_000
        response, growth = peak_growth(server.pid, lambda: upload(server.url, served.headers, archive))
        print(f"dicom cohort of {len(archive)} bytes: {response.status_code}, peak RSS +{growth / MB:.1f} MB")
        assert response.status_code == 413, response.text
        assert response.json()["errors"][0]["file"] == "bomb0.dcm"
        assert growth < 100 * MB, f"dicom cohort: peak RSS +{growth / MB:.0f} MB"

    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 2  # the warm-up predictions
        assert session.scalar(select(func.count()).select_from(Cohort)) == rows_before
    assert set((settings.data_dir / "cohorts").glob("*")) == cohorts_before
