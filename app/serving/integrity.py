"""Model files are checked against the SHA-256 recorded at registration before anything runs them:
a model whose files changed on disk is not the model that was audited."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.core.errors import ConflictError

CHUNK = 1024 * 1024


class TamperedModelError(ConflictError):
    """A model file is missing or differs from its recorded hash."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_files(folder: Path, expected: dict[str, str]) -> None:
    """Raise ``TamperedModelError`` naming every file that is missing or does not match."""
    problems = []
    for name, sha in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != sha:
            problems.append(f"{name} does not match its recorded SHA-256")
    if problems:
        raise TamperedModelError(f"refusing to use model files in {folder.name}: " + "; ".join(problems))
