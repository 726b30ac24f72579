"""Checking an uploaded .zip or .tar.gz (untrusted input) that is kept as it is: nothing but the
manifest is ever written out; members are read from the archive (``members.py``).

- The format comes from the magic bytes (``PK\\x03\\x04`` zip, ``\\x1f\\x8b`` gzip), not the name.
- Refused (400, naming the entry): paths escaping the root (``..``, absolute paths, drive letters,
  backslashes count as separators), symbolic and hard links, devices/FIFOs, encrypted zip entries,
  duplicate entries, corrupt data, and an archive with no files.
- Refused (413): more than ``max_entries`` entries (a zip's count is read from its end-of-central-
  directory record, ZIP64 included, before its directory is loaded; a directory over
  ``MAX_DIRECTORY_BYTES_PER_ENTRY`` per declared entry is refused there too), or more bytes than
  ``max_uncompressed_bytes`` or ``max_compression_ratio`` × the archive's size: declared by the
  entries (zip headers, tar member sizes) before anything is read, and counted on the bytes
  actually read, whatever the headers claim.
- Two steps: ``open_archive`` checks every entry, finds the manifest and writes it alone (to a
  folder the caller removes once it is parsed); the caller then ``read``s the files the manifest's
  rows list, as seekable files (``members.spool``), in archive order. Nothing else is written: the
  checked archive is what the ingestion job decodes from.
- A tar.gz has no index, so its stream is read once to check and list the members, then again up to
  the manifest, then once more per ``read`` up to the last file asked for. Inflating several times
  costs CPU (hundreds of MB/s), never disk or memory; the alternative was writing every file out.
- Streaming: members are copied in 1 MiB chunks into a spooled file, so memory stays flat whatever
  the archive size.
- Skipped silently: macOS/Windows clutter (``__MACOSX/``, ``._*``, ``.DS_Store``, ``Thumbs.db``) and
  folder entries.
- On any error, in ``open_archive`` or in the caller's block, the manifest written is removed.

Manifest discovery: the archive's root is its top level, or its single top-level folder when every
file lies inside one folder (an archive made by compressing a folder). The manifest is
``manifest.csv`` at that root (any letter case) or, failing that, the only ``*.csv`` file there.
A manifest shipped as two CSVs (``ManifestPair``: ISIC 2019's ground truth and metadata) is read as a
pair when the config names them, or when the root has both and no ``manifest.csv``.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from app.cohorts import members
from app.cohorts.members import spool
from app.core.errors import InputError
from app.settings import Settings

CHUNK = 1 << 20
MAX_DIRECTORY_BYTES_PER_ENTRY = 1024  # 46 fixed bytes + name + extra fields + comment; real entries use ~100
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
class ManifestPair:
    """A manifest shipped as two CSVs at the root: ``main`` lists the items, ``companion`` adds columns
    joined on a key. ``required``: the config names them (else a fallback when there is no manifest.csv)."""

    main: str
    companion: str
    required: bool


class CheckedArchive:
    """A checked archive whose manifest (and companion CSV, if any) is on disk; ``read`` reads the
    other files asked for from the archive."""

    def __init__(
        self,
        dest: Path,
        prefix: str,
        manifests: tuple[str, str | None],
        files: list[str],
        source: _Source,
        writer: _Writer,
    ):
        manifest, companion = manifests
        self.dest = dest  # where the manifest is written
        self.root = dest / prefix if prefix else dest  # the manifest's folder (image paths are relative to it)
        self.prefix = prefix  # the root's path in the archive ('' or 'folder/')
        self.manifest = self.root / manifest
        self.companion = self.root / companion if companion else None
        csvs = {prefix + name for name in manifests if name}
        self.files = tuple(f.removeprefix(prefix) for f in files if f not in csvs)  # relative to root
        self._prefix = prefix
        self._source = source
        self._writer = writer

    def read(self, files: Iterable[str]) -> Iterator[tuple[str, IO[bytes]]]:
        """``(path, seekable file)`` for ``files`` (paths relative to ``root``, among ``self.files``), in
        archive order; each file is closed when the next is read. The bytes read in one call are
        counted against the limits, whatever the headers claimed."""
        wanted = {self._prefix + f for f in files}
        unknown = wanted - self._writer.listed
        if unknown:
            raise ValueError(f"not files of this archive: {', '.join(sorted(unknown)[:5])}")
        counter = _Counter(self._writer)
        for rel, member in self._source.read(wanted, counter, self.dest):
            yield rel.removeprefix(self._prefix), member


@contextmanager
def open_archive(
    archive: Path, dest: Path, limits: ArchiveLimits, pair: ManifestPair | None = None
) -> Iterator[CheckedArchive]:
    """Check ``archive``, write its manifest into ``dest`` (created, or existing and empty; also where
    members too large for memory are spooled, unnamed), and yield it for the caller to ``read`` what
    the manifest lists. ``pair``: the two-CSV layout the cohort's preset accepts (module docstring)."""
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"manifest folder {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with open(archive, "rb") as f:
            magic = f.read(4)
        if magic.startswith(b"PK\x05\x06"):
            raise _bad("the archive is empty")
        writer = _Writer(dest, limits, archive.stat().st_size)
        with ExitStack() as stack:
            source: _Source
            if magic.startswith(members.ZIP_MAGIC):
                source = stack.enter_context(_ZipSource.open(archive, writer))
            elif magic.startswith(members.GZIP_MAGIC):
                source = _TarSource.open(archive, writer)
            else:
                raise _bad("the upload is not a .zip or .tar.gz archive (unrecognised content)")
            if not source.files:
                raise _bad("the archive is empty (it holds no files)")
            prefix, manifests = _locate_manifest(source.files, pair)
            for rel, member in source.read({prefix + name for name in manifests if name}, _Counter(writer), dest):
                writer.write(rel, member)
            yield CheckedArchive(dest, prefix, manifests, source.files, source, writer)
    except BaseException:
        empty_folder(dest)
        raise


def empty_folder(dest: Path) -> None:
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
    """Checks entries while an archive is listed, and writes the manifest under ``dest``."""

    def __init__(self, dest: Path, limits: ArchiveLimits, archive_size: int) -> None:
        self.dest = dest
        self.limits = limits
        self.ratio_budget = int(limits.max_compression_ratio * max(archive_size, 1))
        self.declared = 0
        self.entries = 0
        self.listed: set[str] = set()

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
        """The entry's checked '/'-separated path in the archive; ``None`` for clutter that is skipped.

        Raises for unsafe names. Checking each part is enough to keep the manifest written inside
        ``dest``: no entry may be a link, and nothing else is written, so no path component can lead
        elsewhere.
        """
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _bad(f"the archive has more than {self.limits.max_entries} entries", name, 413)
        return _clean_path(name)

    def add_file(self, rel: str, declared_size: int, name: str) -> None:
        """List a file entry: refuse duplicates and a declared total over the limits."""
        if rel in self.listed:
            raise _bad("duplicate entry in the archive", name)
        self.listed.add(rel)
        self.declared += declared_size
        self.check_budget(self.declared, name)

    def write(self, rel: str, source: IO[bytes]) -> None:
        """Write a CSV read from the archive (already counted) at ``rel`` under ``dest``."""
        try:
            (self.dest / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(self.dest / rel, "xb") as out:
                shutil.copyfileobj(source, out, CHUNK)
        except OSError as exc:
            raise _bad(f"cannot write the manifest: {exc.strerror or exc}", rel) from exc


class _Counter:
    """The bytes one pass reads, checked against the limits as they come (a header may lie)."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.total = 0

    def spool(self, source: IO[bytes], name: str, spill_dir: Path) -> IO[bytes]:
        return spool(_Counted(source, self, name), spill_dir)

    def counted(self, member: io.BytesIO, name: str) -> io.BytesIO:
        """``member``, already read whole, counted like a spooled one."""
        self.total += len(member.getbuffer())
        self.writer.check_budget(self.total, name)
        return member


class _Counted:
    """``source`` read through a ``_Counter``."""

    def __init__(self, source: IO[bytes], counter: _Counter, name: str) -> None:
        self.source, self.counter, self.name = source, counter, name

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.counter.total += len(chunk)
        self.counter.writer.check_budget(self.counter.total, self.name)
        return chunk


def _clean_path(name: str) -> str | None:
    """``name`` as a '/'-separated relative path (``members.normalise``); ``None`` for clutter. Raises
    for unsafe names."""
    clean = name.replace("\\", "/")
    if "\x00" in clean or clean.startswith("/") or _DRIVE.match(clean):
        raise _bad("entry has an absolute path", name)
    parts = members.parts(clean)
    if ".." in parts:
        raise _bad("entry escapes the archive root ('..')", name)
    if not parts or parts[0] == "__MACOSX" or parts[-1] in _JUNK_NAMES or parts[-1].startswith("._"):
        return None
    return "/".join(parts)


class _Source(Protocol):
    files: list[str]  # every file entry, checked, as '/'-separated paths from the archive's top

    def read(self, wanted: set[str], counter: _Counter, spill_dir: Path) -> Iterator[tuple[str, IO[bytes]]]: ...


class _ZipSource:
    def __init__(self, zf: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo]) -> None:
        self.zf = zf
        self.entries = entries
        self.files = list(entries)
        assert zf.fp is not None  # opened from a path, open while this source is
        self.fd = zf.fp.fileno()

    @classmethod
    @contextmanager
    def open(cls, archive: Path, writer: _Writer) -> Iterator[_ZipSource]:
        """Check every entry before anything is written; the entry count and directory size first,
        from the end record, before ``zipfile`` loads the directory into memory."""
        try:
            _check_zip_end_record(archive, writer.limits)
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise _bad(f"the zip archive is corrupt or unsupported: {exc}") from exc
        with zf:
            infos = zf.infolist()
            if len(infos) > writer.limits.max_entries:
                raise _bad(f"the archive has {len(infos)} entries, above {writer.limits.max_entries}", None, 413)
            entries = {}
            for info in infos:
                rel = _check_zip_entry(info, writer)
                if rel is not None:
                    writer.add_file(rel, info.file_size, info.filename)
                    entries[rel] = info
            yield cls(zf, entries)

    def read(self, wanted: set[str], counter: _Counter, spill_dir: Path) -> Iterator[tuple[str, IO[bytes]]]:
        for rel in sorted(wanted, key=lambda r: self.entries[r].header_offset):  # in file order
            info = self.entries[rel]
            member: IO[bytes]
            try:
                if (data := members.read_stored(self.fd, info)) is not None:
                    member = counter.counted(io.BytesIO(data), info.filename)
                else:
                    with self.zf.open(info) as source:
                        member = counter.spool(source, info.filename, spill_dir)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise _bad(f"entry is corrupt or unsupported: {exc}", info.filename) from exc
            with member:
                yield rel, member


def _check_zip_end_record(archive: Path, limits: ArchiveLimits) -> None:
    """Refuse on the end-of-central-directory record alone. ``zipfile``'s own reader finds it, so this
    reads the very record (ZIP64 or not) that ``ZipFile`` will trust for the directory's size."""
    with open(archive, "rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # stable since Python 2; pinned by tests
    if end is None:
        raise _bad("the zip archive is corrupt: it has no end-of-central-directory record")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.max_entries:
        raise _bad(f"the archive has {entries:,} entries, above {limits.max_entries:,}", None, 413)
    if size > max(entries, 1) * MAX_DIRECTORY_BYTES_PER_ENTRY:
        raise _bad(
            f"the zip's central directory ({size:,} bytes) is larger than {MAX_DIRECTORY_BYTES_PER_ENTRY:,} "
            f"bytes for each of its {entries:,} entries",
            None,
            413,
        )


def _check_zip_entry(info: zipfile.ZipInfo, writer: _Writer) -> str | None:
    """The path of a file entry to list; ``None`` for skipped clutter and folders."""
    name = info.filename
    rel = writer.path_for(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _bad("entry is a symbolic link", name)
    if rel is None or info.is_dir() or stat.S_ISDIR(mode):
        return None
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise _bad("entry is not a regular file (device, FIFO or socket)", name)
    if info.flag_bits & 0x1:
        raise _bad("entry is encrypted", name)
    return rel


class _TarSource:
    def __init__(self, archive: Path, files: list[str]) -> None:
        self.archive = archive
        self.files = files

    @classmethod
    def open(cls, archive: Path, writer: _Writer) -> _TarSource:
        """One pass over the stream checking every member; nothing is written."""
        files = []
        for _, member in _tar_members(archive):
            name = member.name
            rel = writer.path_for(name)
            if member.issym() or member.islnk():
                raise _bad("entry is a link", name)
            if rel is None or member.isdir():
                continue
            if not member.isreg() or member.issparse():
                raise _bad("entry is not a regular file (device, FIFO or socket)", name)
            writer.add_file(rel, member.size, name)
            files.append(rel)
        return cls(archive, files)

    def read(self, wanted: set[str], counter: _Counter, spill_dir: Path) -> Iterator[tuple[str, IO[bytes]]]:
        """Another pass, reading the wanted members and stopping after the last of them."""
        left = set(wanted)
        if not left:
            return
        for tf, member in _tar_members(self.archive):
            rel = _clean_path(member.name)
            if rel not in left or not member.isreg():
                continue
            source = tf.extractfile(member)
            assert source is not None  # regular members always have data
            try:
                spooled = counter.spool(source, member.name, spill_dir)
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise _bad(f"entry is corrupt: {exc}", member.name) from exc
            with spooled:
                yield rel, spooled
            left.discard(rel)
            if not left:
                return


def _tar_members(archive: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    try:
        yield from members.tar_members(archive)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _bad(f"the tar.gz archive is corrupt: {exc}") from exc


def _locate_manifest(files: list[str], pair: ManifestPair | None) -> tuple[str, tuple[str, str | None]]:
    """(root prefix, (manifest, companion CSV or None) relative to the root): see the module docstring."""
    tops = {f.split("/", 1)[0] for f in files}
    prefix = f"{next(iter(tops))}/" if len(tops) == 1 and all("/" in f for f in files) else ""
    csvs = sorted(rel for f in files if "/" not in (rel := f.removeprefix(prefix)) and rel.lower().endswith(".csv"))
    named = [f for f in csvs if f.lower() == "manifest.csv"]
    if pair is not None and (pair.required or not named):
        missing = [name for name in (pair.main, pair.companion) if name not in csvs]
        if not missing:
            return prefix, (pair.main, pair.companion)
        if pair.required:
            raise _bad(f"the archive root has no {' and no '.join(missing)} (found: {', '.join(csvs) or 'no CSV'})")
    if len(named) == 1:
        return prefix, (named[0], None)
    if len(csvs) == 1:
        return prefix, (csvs[0], None)
    if not csvs:
        raise _bad("the archive has no manifest: put manifest.csv (or a single .csv file) at its root")
    raise _bad(f"the archive root has several CSV files ({', '.join(csvs)}); name the manifest manifest.csv")
