"""Receiving an uploaded archive: copy it to disk in chunks, refusing it once it exceeds the limit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from app.core.errors import InputError

CHUNK = 1024 * 1024


def too_large(limit: int) -> InputError:
    return InputError(f"the upload is larger than the limit of {limit:,} bytes", status=413)


def save_stream(source: BinaryIO, destination: Path, limit: int) -> int:
    """Copy ``source`` to ``destination`` without holding it in memory; return its size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with destination.open("wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                destination.unlink(missing_ok=True)
                raise too_large(limit)
            out.write(chunk)
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
