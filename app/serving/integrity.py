"""Model files are checked against the SHA-256 recorded at registration before anything runs them:
a model whose files changed on disk is not the model that was audited.

A mismatch is a 409 Conflict, not a 5xx: the request is fine and the server did not fail; the model
version is in a state (its files differ from the audited ones) that forbids serving it until an
operator restores or re-registers it. A 5xx would invite automatic retries, which cannot succeed, and
would hide the cause among crashes. The refusal is also logged as an error for the operators.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from app.core.errors import ConflictError

CHUNK = 1024 * 1024
log = logging.getLogger(__name__)


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
    _refuse_if(folder, problems)


def read_verified(folder: Path, expected: dict[str, str]) -> dict[str, bytes]:
    """The files' bytes, each checked against its hash. Callers use these bytes (not the paths) so
    what runs is exactly what was checked, even if a file is replaced a moment later."""
    contents, problems = {}, []
    for name, sha in sorted(expected.items()):
        try:
            data = (folder / name).read_bytes()
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            problems.append(f"{name} does not match its recorded SHA-256")
        contents[name] = data
    _refuse_if(folder, problems)
    return contents


def _refuse_if(folder: Path, problems: list[str]) -> None:
    if problems:
        message = (
            f"refusing to use model files in {folder.name}: " + "; ".join(problems) + " (the files were changed "
            "or removed after the model was audited; restore them or register the model again)"
        )
        log.error(message)
        raise TamperedModelError(message)
