"""Archive extraction: every unsafe or malformed archive is refused, named, and leaves nothing behind."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import LIMITS, listing, png, write_tar_gz, write_zip

from app.cohorts.archive import extract_archive
from app.core.errors import InputError

MANIFEST = b"image,label\na.png,1\n"


def refused(archive: Path, dest: Path, limits=LIMITS) -> InputError:
    with pytest.raises(InputError) as info:
        extract_archive(archive, dest, limits)
    assert listing(dest) == [], "a refused archive must leave nothing behind"
    return info.value


def zip_with_entry(path: Path, info: zipfile.ZipInfo, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("a.png", png())
        zf.writestr(info, data)
    return path


def test_extracts_files_and_finds_manifest(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "img/a.png": png()})
    out = extract_archive(archive, tmp_path / "out", LIMITS)
    assert out.manifest == tmp_path / "out" / "manifest.csv"
    assert out.files == ("img/a.png",)
    assert (out.root / "img/a.png").read_bytes() == png()


def test_tar_gz_detected_by_content_not_name(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "upload.zip", {"manifest.csv": MANIFEST, "a.png": png()})
    out = extract_archive(archive, tmp_path / "out", LIMITS)
    assert out.files == ("a.png",)


def test_single_top_level_folder_is_the_root(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"cohort/manifest.csv": MANIFEST, "cohort/a.png": png()})
    out = extract_archive(archive, tmp_path / "out", LIMITS)
    assert out.root == tmp_path / "out" / "cohort"
    assert out.files == ("a.png",)


def test_manifest_csv_wins_over_other_csv_files(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"notes.csv": b"x\n", "manifest.csv": MANIFEST, "a.png": png()})
    out = extract_archive(archive, tmp_path / "out", LIMITS)
    assert out.manifest.name == "manifest.csv"
    assert set(out.files) == {"notes.csv", "a.png"}


def test_several_csv_files_without_manifest_csv_are_refused(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"a.csv": MANIFEST, "b.csv": MANIFEST, "a.png": png()})
    error = refused(archive, tmp_path / "out")
    assert "a.csv, b.csv" in error.detail


def test_archive_without_csv_is_refused(tmp_path: Path) -> None:
    error = refused(write_zip(tmp_path / "c.zip", {"a.png": png()}), tmp_path / "out")
    assert "no manifest" in error.detail


def test_macos_clutter_is_skipped(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "c.zip",
        {"manifest.csv": MANIFEST, "a.png": png(), "__MACOSX/._a.png": b"x", ".DS_Store": b"x"},
    )
    assert extract_archive(archive, tmp_path / "out", LIMITS).files == ("a.png",)


@pytest.mark.parametrize("name", ["../evil.png", "img/../../evil.png", "..\\evil.png"])
def test_zip_entry_escaping_the_root(tmp_path: Path, name: str) -> None:
    error = refused(zip_with_entry(tmp_path / "c.zip", zipfile.ZipInfo(name)), tmp_path / "out")
    assert error.status == 400
    assert error.errors == [{"file": name, "message": "entry escapes the archive root ('..')"}]
    assert not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("name", ["/etc/evil.png", "C:/evil.png", "C:\\evil.png"])
def test_zip_entry_with_absolute_path(tmp_path: Path, name: str) -> None:
    error = refused(zip_with_entry(tmp_path / "c.zip", zipfile.ZipInfo(name)), tmp_path / "out")
    assert error.errors[0]["file"] == name
    assert "absolute path" in error.errors[0]["message"]


def test_zip_symlink_entry(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    error = refused(zip_with_entry(tmp_path / "c.zip", info, b"/etc/passwd"), tmp_path / "out")
    assert error.errors == [{"file": "link.png", "message": "entry is a symbolic link"}]


def test_zip_device_entry(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("dev.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o644) << 16
    error = refused(zip_with_entry(tmp_path / "c.zip", info), tmp_path / "out")
    assert error.errors[0]["file"] == "dev.png"


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_link_entry(tmp_path: Path, kind: bytes) -> None:
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in {"manifest.csv": MANIFEST, "a.png": png()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = kind, "/etc/passwd"
        tf.addfile(link)
    error = refused(archive, tmp_path / "out")
    assert error.errors == [{"file": "link.png", "message": "entry is a link"}]


def test_tar_entry_escaping_the_root(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "c.tar.gz", {"manifest.csv": MANIFEST, "../../evil.png": png()})
    error = refused(archive, tmp_path / "out")
    assert error.errors[0]["file"] == "../../evil.png"


def test_zip_bomb_total_size(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "big.png": bytes(range(256)) * 8192})
    error = refused(archive, tmp_path / "out", replace(LIMITS, max_uncompressed_bytes=1_000_000))
    assert error.status == 413
    assert error.errors[0]["file"] == "big.png"
    assert "limit of 1000000 bytes" in error.detail


def test_zip_bomb_compression_ratio(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "zeros.png": bytes(20_000_000)})
    error = refused(archive, tmp_path / "out")
    assert error.status == 413
    assert error.errors[0]["file"] == "zeros.png"
    assert "200 times its compressed size" in error.detail


def test_zip_entry_whose_header_understates_its_size(tmp_path: Path) -> None:
    """The headers claim 10 bytes for a 20 MB stream: extraction stops there and the CRC fails."""
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "zeros.png": bytes(20_000_000)})
    data = bytearray(archive.read_bytes())
    real = (20_000_000).to_bytes(4, "little")
    assert data.count(real) == 2  # local header and central directory
    archive.write_bytes(bytes(data.replace(real, (10).to_bytes(4, "little"))))
    error = refused(archive, tmp_path / "out")
    assert error.status == 400
    assert error.errors[0]["file"] == "zeros.png"
    assert "CRC" in error.errors[0]["message"]


def test_tar_gz_bomb_is_caught_on_bytes_written(tmp_path: Path) -> None:
    """A tar.gz declares nothing up front: the count of bytes actually written stops it."""
    noise = np.random.default_rng(0).bytes(6_000_000)
    archive = write_tar_gz(tmp_path / "c.tar.gz", {"manifest.csv": MANIFEST, "noise.png": noise})
    error = refused(archive, tmp_path / "out", replace(LIMITS, max_uncompressed_bytes=5_000_000))
    assert error.status == 413
    assert error.errors[0]["file"] == "noise.png"
    assert "limit of 5000000 bytes" in error.detail


def test_tar_gz_bomb_compression_ratio(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "c.tar.gz", {"manifest.csv": MANIFEST, "zeros.png": bytes(20_000_000)})
    error = refused(archive, tmp_path / "out")
    assert error.status == 413
    assert error.errors[0]["file"] == "zeros.png"


def test_too_many_entries(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, **{f"{i}.png": b"x" for i in range(20)}})
    error = refused(archive, tmp_path / "out", replace(LIMITS, max_entries=10))
    assert error.status == 413


def test_empty_zip(tmp_path: Path) -> None:
    error = refused(write_zip(tmp_path / "c.zip", {}), tmp_path / "out")
    assert error.status == 400
    assert "empty" in error.detail


def test_zip_with_only_folders_is_empty(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("images/"), b"")
    error = refused(archive, tmp_path / "out")
    assert "empty" in error.detail


def test_empty_tar_gz(tmp_path: Path) -> None:
    error = refused(write_tar_gz(tmp_path / "c.tar.gz", {}), tmp_path / "out")
    assert "empty" in error.detail


def test_not_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    archive.write_bytes(b"image,label\n")
    error = refused(archive, tmp_path / "out")
    assert "not a .zip or .tar.gz" in error.detail


def test_corrupt_zip_entry(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "a.png": bytes(range(256)) * 100})
    data = bytearray(archive.read_bytes())
    data[200:210] = b"\xff" * 10  # inside a.png's compressed stream
    archive.write_bytes(bytes(data))
    error = refused(archive, tmp_path / "out")
    assert error.status == 400


def test_duplicate_entries(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("a.png", png())
        zf.writestr("a.png", png(3))
    error = refused(archive, tmp_path / "out")
    assert error.errors == [{"file": "a.png", "message": "duplicate entry in the archive"}]
