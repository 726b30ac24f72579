"""Writing, reading and verifying a model folder.

Integrity chain: ``model.json`` lists the SHA-256 of every other file, and the registry stores the
SHA-256 of ``model.json`` itself (the ``model_versions`` row), so that one hash pins the whole folder.
``verify_manifest`` checks ``model.json`` against it and parses it; ``VerifiedModel.read_files`` then
returns each file's bytes checked against the manifest. Callers run those bytes
(``onnx_chain.make_session`` takes bytes, not paths): what runs is exactly what was checked, even if
a file on disk is replaced a moment after it was read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.modelpkg.errors import ManifestError, TamperedModelError
from app.modelpkg.manifest import MANIFEST_FILE, FileEntry, ModelManifest, parse_manifest

CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entries(folder: Path) -> dict[str, FileEntry]:
    """Name → (SHA-256, size) of every file in ``folder`` except ``model.json``, in name order."""
    entries = {}
    for path in sorted(p for p in folder.iterdir() if p.name != MANIFEST_FILE):
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        entries[path.name] = FileEntry(sha256=digest.hexdigest(), bytes=size)
    return entries


def write_manifest(folder: Path, manifest: ModelManifest) -> str:
    """Write ``folder/model.json`` atomically (a temporary file, flushed, then renamed over it) and
    return the SHA-256 of the bytes written: the hash the registry stores."""
    data = manifest.to_json().encode()
    tmp = folder / f".{MANIFEST_FILE}.partial"
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / MANIFEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


def read_manifest(folder: Path) -> ModelManifest:
    """``folder/model.json``, parsed and checked for consistency but not against a registered hash
    (for tools and tests; anything that runs a model uses ``verify_manifest``)."""
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise ManifestError(f"{folder.name}/{MANIFEST_FILE} cannot be read: {exc.strerror}") from None
    return parse_manifest(data, f"{folder.name}/{MANIFEST_FILE}")


@dataclass(frozen=True)
class VerifiedModel:
    """A folder whose ``model.json`` matched its registered hash; ``manifest`` is parsed from those bytes."""

    folder: Path
    manifest: ModelManifest
    manifest_bytes: bytes
    sha256: str  # of manifest_bytes

    def read_files(self, names: Iterable[str] | None = None) -> dict[str, bytes]:
        """The bytes of ``names`` (default: every file the manifest lists), each checked against its
        SHA-256 and size; one ``TamperedModelError`` names every file that is missing or differs."""
        wanted = sorted(self.manifest.files if names is None else set(names))
        unknown = [name for name in wanted if name not in self.manifest.files]
        if unknown:
            raise ManifestError(f"{self.folder.name}/{MANIFEST_FILE} lists no file {', '.join(unknown)}")
        contents, problems = {}, []
        for name in wanted:
            entry = self.manifest.files[name]
            try:
                data = (self.folder / name).read_bytes()
            except OSError:
                problems.append(f"{name} is missing")
                continue
            if len(data) != entry.bytes or sha256_bytes(data) != entry.sha256:
                problems.append(f"{name} does not match its recorded SHA-256")
            contents[name] = data
        if problems:
            raise _tampered(self.folder, problems)
        return contents


def verify_manifest(folder: Path, manifest_sha256: str) -> VerifiedModel:
    """Read ``model.json``, check it against the registered hash, then parse it.

    ``TamperedModelError`` if it is missing or changed; ``ManifestError`` if it matches but is not a
    manifest this service reads (a folder registered by a different format version).
    """
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
    except OSError:
        raise _tampered(folder, [f"{MANIFEST_FILE} is missing"]) from None
    digest = sha256_bytes(data)
    if digest != manifest_sha256:
        raise _tampered(folder, [f"{MANIFEST_FILE} does not match its recorded SHA-256"])
    manifest = parse_manifest(data, f"{folder.name}/{MANIFEST_FILE}")
    return VerifiedModel(folder=folder, manifest=manifest, manifest_bytes=data, sha256=digest)


def _tampered(folder: Path, problems: list[str]) -> TamperedModelError:
    return TamperedModelError(
        f"refusing to use model files in {folder.name}: " + "; ".join(problems) + " (the files were changed "
        "or removed after the model was audited; restore them or register the model again)"
    )
