"""Files the service writes hold patient data, so they are owner-only: files 0600, folders 0700.

``make_private`` sets the process umask to 0o077, so whatever code creates a file or folder in a
service process — extracted archives, spooled uploads, decoded caches, the SQLite database, model
exports, job work folders — gets no group or other permissions, and job processes (which inherit
the umask, or call this themselves on Ray) do the same. The data folder itself is made 0700 too,
since it may predate this rule.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

OWNER_ONLY_UMASK = 0o077


def make_private(data_dir: Path | None = None) -> None:
    os.umask(OWNER_ONLY_UMASK)
    if data_dir is not None:
        private_dir(data_dir)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only, and make it 0700 if it already existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # a folder owned by someone else keeps its mode
        path.chmod(0o700)
    return path
