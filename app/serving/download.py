"""``GET /v1/models/{id}/onnx``: the model folder as a zip, or one file of it, after the same hash
check as serving — a tampered model is not handed out either."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO

from app.core.errors import InputError
from app.modelpkg.manifest import MANIFEST_FILE
from app.serving.integrity import read_verified
from app.serving.runtime import ModelFiles

CHUNK = 1024 * 1024


def model_file(files: ModelFiles, name: str) -> bytes:
    if name not in files.expected:
        known = ", ".join(sorted(files.expected))
        raise InputError(f"the model has no file {name!r}; its files are {known}", status=404)
    verified, contents = read_verified(
        files.folder, files.expected[MANIFEST_FILE], [] if name == MANIFEST_FILE else [name]
    )
    return verified.manifest_bytes if name == MANIFEST_FILE else contents[name]


def model_archive(files: ModelFiles, root: str) -> IO[bytes]:
    """A zip (stored, ONNX barely compresses) of every file under ``root/``, each verified as it is
    added; written to a temporary file so large models are not held in memory."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller once streamed
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for name in sorted(files.expected):
                zf.writestr(f"{root}/{name}", model_file(files, name))
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def iter_and_close(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := fh.read(CHUNK):
            yield chunk
    finally:
        fh.close()
