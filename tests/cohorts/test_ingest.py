"""Building the image cache: same result in one or several processes and from a folder, a zip or a
tar.gz archive (decoded in place, nothing extracted), every bad file named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import dicom_bytes, image_bytes, listing, write_files, write_tar_gz, write_zip

from app.cohorts import ingest, members
from app.cohorts.cache import ITEMS_FILE, load_cohort_arrays
from app.cohorts.config import CohortConfig
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import decode_image
from app.cohorts.ingest import IngestCancelled, build_cache
from app.cohorts.manifest import ParsedManifest, parse_manifest
from app.core.errors import InputError

CONFIG = CohortConfig(
    name="c", image_column="image", label_column="label", sensitive_attributes=["sex"], patient_id_column="pid"
)


def make_cohort(root: Path, n: int = 24, bad: dict[str, bytes] | None = None) -> ParsedManifest:
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    rows = ["image,label,sex,pid"]
    for i in range(n):
        pixels = rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)
        name, data = [
            (f"img/{i}.png", image_bytes(pixels)),
            (f"img/{i}.jpg", image_bytes(pixels, "JPEG")),
            (f"img/{i}.dcm", dicom_bytes(pixels[..., 0])),
        ][i % 3]
        files[name] = data
        rows.append(f"{name},{i % 2},{'F' if i % 4 else 'M'},p{i // 3}")
    for name, data in (bad or {}).items():
        files[name] = data
        rows.append(f"{name},1,F,")
    write_files(root, files)
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return parse_manifest(root / "manifest.csv", CONFIG)


def test_cache_round_trip(tmp_path: Path) -> None:
    manifest = make_cohort(tmp_path / "files")
    progress: list[tuple[int, int]] = []
    build_cache(manifest, tmp_path / "files", tmp_path / "cache", 32, 3, progress=lambda d, t: progress.append((d, t)))
    arrays = load_cohort_arrays(tmp_path / "cache")
    assert arrays.images.shape == (24, 32, 32, 3)
    for row in (0, 1, 2, 23):
        expected = decode_image(tmp_path / "files" / manifest.items[row].image, 32, 3, ImageLimits(max_pixels=10**8))
        assert np.array_equal(arrays.images[row], expected)
    assert list(arrays.labels) == [item.label for item in manifest.items]
    assert list(arrays.split) == [item.split for item in manifest.items]
    assert list(arrays.attributes["sex"]) == [item.attributes["sex"] for item in manifest.items]
    assert arrays.patient_ids[0] == "p0"
    assert progress[-1] == (24, 24) and [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_worker_processes_give_the_same_cache(tmp_path: Path) -> None:
    manifest = make_cohort(tmp_path / "files", n=40)
    build_cache(manifest, tmp_path / "files", tmp_path / "one", 24, 1, workers=1)
    build_cache(manifest, tmp_path / "files", tmp_path / "two", 24, 1, workers=2)
    assert np.array_equal(load_cohort_arrays(tmp_path / "one").images, load_cohort_arrays(tmp_path / "two").images)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_decoding_from_an_archive_gives_the_same_cache_as_from_its_files(tmp_path: Path, kind: str) -> None:
    """PNG, JPEG and DICOM members, one and two decoding processes; the archive's folder gains nothing
    (members too large for memory would be spooled there, unnamed)."""
    manifest = make_cohort(tmp_path / "files", n=40)
    build_cache(manifest, tmp_path / "files", tmp_path / "expected", 24, 1, workers=1)
    entries = {p.relative_to(tmp_path / "files").as_posix(): p.read_bytes() for p in (tmp_path / "files").rglob("*.*")}
    (tmp_path / "stored").mkdir()
    archive = (write_zip if kind == "zip" else write_tar_gz)(tmp_path / "stored" / f"archive.{kind}", entries)
    expected = load_cohort_arrays(tmp_path / "expected").images
    for workers in (1, 2):
        build_cache(manifest, archive, tmp_path / f"from-{workers}", 24, 1, workers=workers)
        assert np.array_equal(load_cohort_arrays(tmp_path / f"from-{workers}").images, expected), workers
    assert listing(tmp_path / "stored") == [f"archive.{kind}"]


OPENS_SCRIPT = """
import os, sys, zipfile
from pathlib import Path

opened = []
plain_init = zipfile.ZipFile.__init__
def counted_init(self, *args, **kwargs):
    opened.append(args[0])
    plain_init(self, *args, **kwargs)
zipfile.ZipFile.__init__ = counted_init

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import decode_into_store, start_decoder
from app.cohorts.image_store import create_image_store

archive, cache, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
create_image_store(cache, len(names), 16, 1)
start_decoder(os.getppid(), archive, cache)  # as the decode pool's initializer
for chunk in ([0, 1], [2, 3], [4, 5]):
    assert decode_into_store(cache, len(names), 16, 1, ImageLimits(), archive, [(i, names[i]) for i in chunk]) == []
print(sum(str(path) == str(archive) for path in opened))  # imports may open zips of their own
"""


def test_a_decoding_process_opens_the_zip_once_for_all_its_chunks(tmp_path: Path) -> None:
    manifest = make_cohort(tmp_path / "files", n=6)
    entries = {p.relative_to(tmp_path / "files").as_posix(): p.read_bytes() for p in (tmp_path / "files").rglob("*.*")}
    archive = write_zip(tmp_path / "archive.zip", entries)
    names = [item.image for item in manifest.items]
    done = subprocess.run(
        [sys.executable, "-c", OPENS_SCRIPT, str(archive), str(tmp_path / "cache"), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]  # three chunks, one open (each chunk used to open and index it again)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_members_too_large_for_memory_give_the_same_cache(tmp_path: Path, kind: str, monkeypatch) -> None:
    """With the in-memory bound lowered below the members' sizes, members are spooled to unnamed
    temporary files, and a tar.gz's are decoded by the streaming process instead of being handed over."""
    monkeypatch.setattr(members, "SPOOL_BYTES", 1000)
    monkeypatch.setattr(ingest, "SPOOL_BYTES", 1000)
    manifest = make_cohort(tmp_path / "files", n=12)
    build_cache(manifest, tmp_path / "files", tmp_path / "expected", 24, 1)
    entries = {p.relative_to(tmp_path / "files").as_posix(): p.read_bytes() for p in (tmp_path / "files").rglob("*.*")}
    assert sum(len(data) > 1000 for data in entries.values()) >= 6
    archive = (write_zip if kind == "zip" else write_tar_gz)(tmp_path / f"archive.{kind}", entries)
    progress: list[tuple[int, int]] = []
    build_cache(manifest, archive, tmp_path / "cache", 24, 1, progress=lambda d, t: progress.append((d, t)))
    assert np.array_equal(
        load_cohort_arrays(tmp_path / "cache").images, load_cohort_arrays(tmp_path / "expected").images
    )
    assert progress[-1] == (12, 12)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_corrupt_member_is_named_by_the_archive_decoder(tmp_path: Path, kind: str) -> None:
    manifest = make_cohort(tmp_path / "files", n=6, bad={"img/bad.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 30})
    entries = {p.relative_to(tmp_path / "files").as_posix(): p.read_bytes() for p in (tmp_path / "files").rglob("*.*")}
    archive = (write_zip if kind == "zip" else write_tar_gz)(tmp_path / f"archive.{kind}", entries)
    with pytest.raises(InputError) as info:
        build_cache(manifest, archive, tmp_path / "cache", 16, 1, workers=2)
    assert [e["file"] for e in info.value.errors] == ["img/bad.png"]
    assert not (tmp_path / "cache" / ITEMS_FILE).exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_bad_file_is_named_and_the_cache_is_left_incomplete(tmp_path: Path, workers: int) -> None:
    good = image_bytes(np.zeros((64, 64, 3), dtype=np.uint8), "JPEG")
    bad = {
        "bad/truncated.jpg": good[: len(good) // 2],
        "bad/text.png": b"not an image at all",
        "bad/huge.png": image_bytes(np.zeros((300, 300), dtype=np.uint8)),
    }
    manifest = make_cohort(tmp_path / "files", n=6, bad=bad)
    with pytest.raises(InputError) as info:
        build_cache(
            manifest,
            tmp_path / "files",
            tmp_path / "cache",
            16,
            3,
            workers=workers,
            limits=ImageLimits(max_pixels=50_000),
        )
    errors = info.value.errors
    assert [(e["row"], e["file"]) for e in errors] == [
        (8, "bad/truncated.jpg"),
        (9, "bad/text.png"),
        (10, "bad/huge.png"),
    ]
    assert "truncated or corrupt JPEG" in errors[0]["message"]
    assert "not a PNG, JPEG or DICOM" in errors[1]["message"]
    assert "decompression bomb" in errors[2]["message"]
    assert not (tmp_path / "cache" / ITEMS_FILE).exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_stops_between_chunks(tmp_path: Path, workers: int) -> None:
    manifest = make_cohort(tmp_path / "files", n=40)
    done: list[int] = []
    with pytest.raises(IngestCancelled):
        build_cache(
            manifest,
            tmp_path / "files",
            tmp_path / "cache",
            16,
            3,
            progress=lambda d, _: done.append(d),
            workers=workers,
            should_cancel=lambda: bool(done),
        )
    assert len(done) == 1
    assert not (tmp_path / "cache" / ITEMS_FILE).exists()


def test_items_file_matches_the_cache_format(tmp_path: Path) -> None:
    manifest = make_cohort(tmp_path / "files", n=6)
    build_cache(manifest, tmp_path / "files", tmp_path / "cache", 16, 1)
    meta = json.loads((tmp_path / "cache" / ITEMS_FILE).read_text())
    assert meta["item_ids"] == [item.item_id for item in manifest.items]
    assert (meta["n"], meta["size"], meta["channels"]) == (6, 16, 1)
