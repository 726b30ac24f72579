"""A small zip writer for synthetic cohorts: fixed timestamps, so a seed gives identical bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import TracebackType

_EPOCH = (2021, 1, 1, 0, 0, 0)


class ArchiveWriter:
    """Adds in-memory files to a zip; images are stored as is (already compressed), text deflated."""

    def __init__(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.zip = zipfile.ZipFile(out, "w")

    def add(self, name: str, data: bytes, compress: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.zip.close()
        if exc_type is not None:
            Path(self.zip.filename or "").unlink(missing_ok=True)
