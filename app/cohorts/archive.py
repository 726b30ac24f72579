"""Safe extraction of an uploaded .zip or .tar.gz (untrusted input) into a fresh folder.

- The format comes from the magic bytes (``PK\\x03\\x04`` zip, ``\\x1f\\x8b`` gzip), not the name.
- Refused (400, naming the entry): paths escaping the root (``..``, absolute paths, drive letters,
  backslashes count as separators), symbolic and hard links, devices/FIFOs, encrypted zip entries,
  duplicate entries, corrupt data, and an archive with no files.
- Refused (413): more than ``max_entries`` entries, or more bytes than ``max_uncompressed_bytes`` or
  ``max_compression_ratio`` × the archive's size. Sizes are counted on the bytes actually written,
  whatever the headers claim (a zip's declared sizes are only used to refuse early).
- Streaming: entries are copied in 1 MiB chunks, so memory stays flat whatever the archive size.
  Zip entries are all checked before any is written.
- Skipped silently: macOS/Windows clutter (``__MACOSX/``, ``._*``, ``.DS_Store``, ``Thumbs.db``).
- On any error everything extracted is removed before ``InputError`` is raised.

Manifest discovery: the archive's root is its top level, or its single top-level folder when every
file lies inside one folder (an archive made by compressing a folder). The manifest is
``manifest.csv`` at that root (any letter case) or, failing that, the only ``*.csv`` file there.
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.core.errors import InputError
from app.settings import Settings

CHUNK = 1 << 20
_JUNK_NAMES = {".DS_Store", "Thumbs.db"}
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_entries: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_entries=settings.max_archive_entries,
        )


@dataclass(frozen=True)
class ExtractedArchive:
    dest: Path  # the extraction folder
    root: Path  # the archive root (see module docstring): manifest and image paths are relative to it
    manifest: Path
    files: tuple[str, ...]  # every extracted file except the manifest, relative to root, '/'-separated
    total_bytes: int


def extract_archive(archive: Path, dest: Path, limits: ArchiveLimits) -> ExtractedArchive:
    """Extract ``archive`` into ``dest`` (created, or existing and empty) and find the manifest."""
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"extraction folder {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        writer = _Writer(dest, limits, archive.stat().st_size)
        with open(archive, "rb") as f:
            magic = f.read(4)
        if magic.startswith(b"PK\x05\x06"):
            raise _bad("the archive is empty")
        if magic.startswith(b"PK\x03\x04"):
            _extract_zip(archive, writer)
        elif magic.startswith(b"\x1f\x8b"):
            _extract_tar_gz(archive, writer)
        else:
            raise _bad("the upload is not a .zip or .tar.gz archive (unrecognised content)")
        if not writer.files:
            raise _bad("the archive is empty (it holds no files)")
        return _locate_manifest(dest, writer.files, writer.total)
    except BaseException:
        remove_extracted(dest)
        raise


def remove_extracted(dest: Path) -> None:
    """Remove everything under ``dest`` (the folder itself stays)."""
    if not dest.exists():
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _bad(detail: str, entry: str | None = None, status: int = 400) -> InputError:
    return InputError(detail, [{"file": entry, "message": detail}] if entry else [], status=status)


class _Writer:
    """Writes entries under ``dest``, checking names and counting real bytes against the limits."""

    def __init__(self, dest: Path, limits: ArchiveLimits, archive_size: int) -> None:
        self.dest = dest
        self.limits = limits
        self.ratio_budget = int(limits.max_compression_ratio * max(archive_size, 1))
        self.total = 0
        self.entries = 0
        self.files: list[str] = []
        self.folders: set[str] = set()

    def check_budget(self, total: int, entry: str) -> None:
        if total > self.limits.max_uncompressed_bytes:
            raise _bad(
                f"the archive expands beyond the limit of {self.limits.max_uncompressed_bytes} bytes",
                entry,
                413,
            )
        if total > self.ratio_budget:
            raise _bad(
                f"the archive expands more than {self.limits.max_compression_ratio:g} times its "
                "compressed size (a compression bomb?)",
                entry,
                413,
            )

    def path_for(self, name: str) -> str | None:
        """The entry's path relative to ``dest``; ``None`` for clutter that is skipped.

        Raises for unsafe names. Checking each part is enough to stay inside ``dest``: nothing
        extracted is ever a link, so no path component can lead elsewhere.
        """
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _bad(f"the archive has more than {self.limits.max_entries} entries", name, 413)
        clean = name.replace("\\", "/")
        if "\x00" in clean or clean.startswith("/") or _DRIVE.match(clean):
            raise _bad("entry has an absolute path", name)
        parts = [p for p in clean.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _bad("entry escapes the archive root ('..')", name)
        if not parts or parts[0] == "__MACOSX" or parts[-1] in _JUNK_NAMES or parts[-1].startswith("._"):
            return None
        return "/".join(parts)

    def mkdir(self, rel: str, name: str) -> None:
        if rel in self.folders:
            return
        try:
            (self.dest / rel).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _bad(f"cannot create folder: {exc.strerror}", name) from exc
        self.folders.add(rel)

    def write(self, rel: str, source: IO[bytes], name: str) -> None:
        folder, _, _ = rel.rpartition("/")
        if folder:
            self.mkdir(folder, name)
        try:
            with open(self.dest / rel, "xb") as out:
                while chunk := source.read(CHUNK):
                    self.total += len(chunk)
                    self.check_budget(self.total, name)
                    out.write(chunk)
        except FileExistsError as exc:
            raise _bad("duplicate entry in the archive", name) from exc
        except OSError as exc:
            raise _bad(f"cannot extract entry: {exc.strerror or exc}", name) from exc
        self.files.append(rel)


def _extract_zip(archive: Path, writer: _Writer) -> None:
    """Check every entry first, so nothing is written for an archive with a bad entry anywhere."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > writer.limits.max_entries:
                raise _bad(f"the archive has {len(infos)} entries, above {writer.limits.max_entries}", None, 413)
            declared = 0
            for info in infos:
                declared += info.file_size
                writer.check_budget(declared, info.filename)
            files = [(info, rel) for info in infos if (rel := _check_zip_entry(info, writer)) is not None]
            for info, rel in files:
                _copy_zip_entry(zf, info, rel, writer)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _bad(f"the zip archive is corrupt or unsupported: {exc}") from exc


def _check_zip_entry(info: zipfile.ZipInfo, writer: _Writer) -> str | None:
    """The path of a file entry to copy; ``None`` for skipped clutter and (created) folders."""
    name = info.filename
    rel = writer.path_for(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _bad("entry is a symbolic link", name)
    if rel is None:
        return None
    if info.is_dir() or stat.S_ISDIR(mode):
        writer.mkdir(rel, name)
        return None
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise _bad("entry is not a regular file (device, FIFO or socket)", name)
    if info.flag_bits & 0x1:
        raise _bad("entry is encrypted", name)
    return rel


def _copy_zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, writer: _Writer) -> None:
    try:
        with zf.open(info) as source:
            writer.write(rel, source, info.filename)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _bad(f"entry is corrupt: {exc}", info.filename) from exc


def _extract_tar_gz(archive: Path, writer: _Writer) -> None:
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tf:
            for member in tf:
                name = member.name
                rel = writer.path_for(name)
                if member.issym() or member.islnk():
                    raise _bad("entry is a link", name)
                if rel is None:
                    continue
                if member.isdir():
                    writer.mkdir(rel, name)
                elif member.isreg() and not member.issparse():
                    source = tf.extractfile(member)
                    assert source is not None  # regular members always have data
                    writer.write(rel, source, name)
                else:
                    raise _bad("entry is not a regular file (device, FIFO or socket)", name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _bad(f"the tar.gz archive is corrupt: {exc}") from exc


def _locate_manifest(dest: Path, files: list[str], total: int) -> ExtractedArchive:
    tops = {f.split("/", 1)[0] for f in files}
    prefix = f"{next(iter(tops))}/" if len(tops) == 1 and all("/" in f for f in files) else ""
    relative = [f.removeprefix(prefix) for f in files]
    csvs = sorted(f for f in relative if "/" not in f and f.lower().endswith(".csv"))
    named = [f for f in csvs if f.lower() == "manifest.csv"]
    if len(named) == 1:
        manifest = named[0]
    elif len(csvs) == 1:
        manifest = csvs[0]
    elif not csvs:
        raise _bad("the archive has no manifest: put manifest.csv (or a single .csv file) at its root")
    else:
        raise _bad(f"the archive root has several CSV files ({', '.join(csvs)}); name the manifest manifest.csv")
    root = dest / prefix if prefix else dest
    return ExtractedArchive(
        dest=dest,
        root=root,
        manifest=root / manifest,
        files=tuple(f for f in relative if f != manifest),
        total_bytes=total,
    )
