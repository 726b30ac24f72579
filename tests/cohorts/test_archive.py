"""Archive checking: every unsafe or malformed archive is refused, named, and leaves nothing behind;
nothing but the manifest is ever written out."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import LIMITS, listing, png, read_all, write_tar_gz, write_zip

from app.cohorts.archive import open_archive
from app.cohorts.members import ZipMembers
from app.core.errors import InputError

MANIFEST = b"image,label\na.png,1\n"


def refused(archive: Path, dest: Path, limits=LIMITS) -> InputError:
    with pytest.raises(InputError) as info:
        read_all(archive, dest, limits)
    assert listing(dest) == [], "a refused archive must leave nothing behind"
    return info.value


def zip_with_entry(path: Path, info: zipfile.ZipInfo, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("a.png", png())
        zf.writestr(info, data)
    return path


def test_reads_files_and_finds_manifest(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "img/a.png": png()})
    out, contents = read_all(archive, tmp_path / "out", LIMITS)
    assert out.manifest == tmp_path / "out" / "manifest.csv"
    assert out.files == ("img/a.png",)
    assert contents == {"img/a.png": png()}
    assert listing(tmp_path / "out") == ["manifest.csv"], "only the manifest is written"


def test_tar_gz_detected_by_content_not_name(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "upload.zip", {"manifest.csv": MANIFEST, "a.png": png()})
    out, contents = read_all(archive, tmp_path / "out", LIMITS)
    assert out.files == ("a.png",) and contents == {"a.png": png()}


def test_single_top_level_folder_is_the_root(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"cohort/manifest.csv": MANIFEST, "cohort/a.png": png()})
    out, contents = read_all(archive, tmp_path / "out", LIMITS)
    assert out.root == tmp_path / "out" / "cohort" and out.prefix == "cohort/"
    assert out.files == ("a.png",) and contents == {"a.png": png()}


def test_manifest_csv_wins_over_other_csv_files(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"notes.csv": b"x\n", "manifest.csv": MANIFEST, "a.png": png()})
    out, _ = read_all(archive, tmp_path / "out", LIMITS)
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
    assert read_all(archive, tmp_path / "out", LIMITS)[0].files == ("a.png",)


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
    """The headers claim 10 bytes for a 20 MB stream: reading stops there and the CRC fails."""
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "zeros.png": bytes(20_000_000)})
    data = bytearray(archive.read_bytes())
    real = (20_000_000).to_bytes(4, "little")
    assert data.count(real) == 2  # local header and central directory
    archive.write_bytes(bytes(data.replace(real, (10).to_bytes(4, "little"))))
    error = refused(archive, tmp_path / "out")
    assert error.status == 400
    assert error.errors[0]["file"] == "zeros.png"
    assert "CRC" in error.errors[0]["message"]


def test_tar_gz_bomb_is_caught_on_its_declared_sizes(tmp_path: Path) -> None:
    """A tar.gz has no directory: the sizes its member headers declare, summed while it is listed, stop it."""
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


def stored_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A zip whose members are stored, not deflated (as most image archives are): they are read in
    place (``members.read_stored``), not through ``zipfile``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_stored_members_are_read_byte_identical(tmp_path: Path) -> None:
    entries = {"manifest.csv": MANIFEST, "a.png": png(), "sub/ü.png": png(3), "empty.png": b""}
    _, contents = read_all(stored_zip(tmp_path / "c.zip", entries), tmp_path / "out")
    assert contents == {name: data for name, data in entries.items() if name != "manifest.csv"}
    with ZipMembers.open(tmp_path / "c.zip", tmp_path) as zipped:
        assert zipped.read("sub/ü.png") == png(3)


def corrupt_stored(path: Path, find: bytes, replace_with: bytes) -> Path:
    data = path.read_bytes()
    at = data.index(find, data.index(b"a.png") + 5)  # after the local header's name: a.png's data
    path.write_bytes(data[:at] + replace_with + data[at + len(find) :])
    return path


def test_a_stored_member_with_a_bad_crc_is_refused_and_named(tmp_path: Path) -> None:
    archive = stored_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "a.png": png()})
    corrupt_stored(archive, b"IDAT", b"IDAX")
    error = refused(archive, tmp_path / "out")
    assert error.status == 400
    assert error.errors == [
        {"file": "a.png", "message": "entry is corrupt or unsupported: Bad CRC-32 for file 'a.png'"}
    ]
    with ZipMembers.open(archive, tmp_path) as zipped, pytest.raises(zipfile.BadZipFile, match="CRC-32"):
        zipped.read("a.png")


def test_a_stored_member_whose_local_header_names_another_file_is_refused(tmp_path: Path) -> None:
    archive = stored_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "a.png": png()})
    data = archive.read_bytes()
    local = data.index(b"PK\x03\x04", 1)  # the second member's local header
    name_at = local + 30
    assert data[name_at : name_at + 5] == b"a.png"
    archive.write_bytes(data[:name_at] + b"b.png" + data[name_at + 5 :])
    error = refused(archive, tmp_path / "out")
    assert error.errors == [
        {"file": "a.png", "message": "entry is corrupt or unsupported: bad local header of 'a.png'"}
    ]


def test_duplicate_entries(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("manifest.csv", MANIFEST)
        zf.writestr("a.png", png())
        zf.writestr("a.png", png(3))
    error = refused(archive, tmp_path / "out")
    assert error.errors == [{"file": "a.png", "message": "duplicate entry in the archive"}]


def zip64_end_record(data: bytes, declared_entries: int) -> bytes:
    """``data`` (a zip without a comment) with its end record replaced by a ZIP64 one declaring
    ``declared_entries``; the directory itself is unchanged."""
    size, offset = struct.unpack("<LL", data[-10:-2])
    body = data[:-22]
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, declared_entries, declared_entries, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + record + locator + end


def test_entry_count_is_read_from_the_end_record_before_the_directory(tmp_path: Path) -> None:
    """The count comes from the end record: the directory (garbage here) is never read. Loading a
    2.1-million-entry directory first took 32 s and 1.2 GB before the 413."""
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, **{f"{i}.png": b"x" for i in range(20)}})
    data = bytearray(archive.read_bytes())
    _, size, offset = struct.unpack("<HLL", data[-12:-2])
    data[offset : offset + size] = b"\xee" * size
    archive.write_bytes(bytes(data))
    error = refused(archive, tmp_path / "out", replace(LIMITS, max_entries=10))
    assert error.status == 413
    assert error.detail == "the archive has 21 entries, above 10"


def test_zip64_end_record_declaring_millions_of_entries(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    archive.write_bytes(
        zip64_end_record(write_zip(tmp_path / "small.zip", {"manifest.csv": MANIFEST}).read_bytes(), 3_000_000)
    )
    error = refused(archive, tmp_path / "out")
    assert error.status == 413
    assert error.detail == "the archive has 3,000,000 entries, above 10,000"


def test_real_zip64_archive_is_counted(tmp_path: Path) -> None:
    """Over 65,535 entries zipfile writes a ZIP64 end record; its count is the one checked."""
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.csv", MANIFEST)
        for i in range(70_000):
            zf.writestr(f"{i}", b"")
    assert b"PK\x06\x06" in archive.read_bytes()[-200:]
    error = refused(archive, tmp_path / "out", replace(LIMITS, max_entries=65_536))
    assert error.detail == "the archive has 70,001 entries, above 65,536"


def test_directory_larger_than_its_entries_need(tmp_path: Path) -> None:
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("manifest.csv")
        info.comment = b"c" * 5000
        zf.writestr(info, MANIFEST)
    error = refused(archive, tmp_path / "out")
    assert error.status == 413
    assert "central directory (5,058 bytes) is larger than 1,024 bytes for each of its 1 entries" in error.detail


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_only_the_manifest_is_written_and_only_the_files_asked_for_are_read(tmp_path: Path, fmt: str) -> None:
    """The manifest is written alone, then only what ``read`` is given is read, in archive order; a
    tar.gz's manifest comes last here, so its stream is read three times."""
    entries = {"img/b.png": png(2), "img/a.png": png(1), **{f"junk/{i}.bin": b"" for i in range(50)}}
    entries["manifest.csv"] = MANIFEST
    write = write_zip if fmt == "zip" else write_tar_gz
    archive = write(tmp_path / f"c.{fmt}", entries)
    with open_archive(archive, tmp_path / "out", LIMITS) as checked:
        assert listing(tmp_path / "out") == ["manifest.csv"]
        assert len(checked.files) == 52
        read = [(name, member.read()) for name, member in checked.read(["img/a.png", "img/b.png"])]
    assert read == [("img/b.png", png(2)), ("img/a.png", png(1))]
    assert listing(tmp_path / "out") == ["manifest.csv"]


def test_bytes_read_are_counted_against_the_limits_whatever_the_tar_headers_say(tmp_path: Path) -> None:
    """The limits hold on the bytes read, not only on the sizes declared: a pass that reads more than
    the budget is stopped, naming the member."""
    archive = write_tar_gz(tmp_path / "c.tar.gz", {"manifest.csv": MANIFEST, "a.png": png(1), "b.png": png(2)})
    budget = len(MANIFEST) + len(png(1)) + len(png(2))
    with open_archive(archive, tmp_path / "out", replace(LIMITS, max_uncompressed_bytes=budget)) as checked:
        checked._writer.limits = replace(LIMITS, max_uncompressed_bytes=len(MANIFEST) + len(png(1)))
        with pytest.raises(InputError) as info:
            list(checked.read(["a.png", "b.png"]))
    assert info.value.status == 413 and info.value.errors[0]["file"] == "b.png"


def test_an_error_in_the_callers_block_removes_the_manifest(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "c.zip", {"manifest.csv": MANIFEST, "a.png": png()})
    with pytest.raises(InputError), open_archive(archive, tmp_path / "out", LIMITS) as checked:
        list(checked.read(["a.png"]))
        raise InputError("the manifest has 1 problem(s)")
    assert listing(tmp_path / "out") == []
