"""Model files are checked against the SHA-256 recorded at registration before anything runs them:
a model whose files changed on disk is not the model that was audited.

The check itself is the model format's (``app.modelpkg.folder``); this module says what a refusal
means for the API. A mismatch, or a ``model.json`` this service cannot read, is a 409 Conflict, not a
5xx: the request is fine and the server did not fail; the model version is in a state (its files
differ from the audited ones) that forbids serving it until an operator restores or re-registers it.
A 5xx would invite automatic retries, which cannot succeed, and would hide the cause among crashes.
The refusal is also logged as an error for the operators.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from app.core.errors import ConflictError
from app.modelpkg.errors import ModelFolderError
from app.modelpkg.folder import VerifiedModel, verify_manifest

log = logging.getLogger(__name__)


class RefusedModelError(ConflictError):
    """A model file is missing or differs from its recorded hash, or ``model.json`` cannot be used."""


def read_verified(
    folder: Path, manifest_sha256: str, names: Iterable[str] | None = None
) -> tuple[VerifiedModel, dict[str, bytes]]:
    """The verified manifest and the bytes of ``names`` (default: every file), each checked against
    its hash. Callers use these bytes, not the paths, so what runs or is handed out is exactly what
    was checked, even if a file is replaced a moment later."""
    try:
        verified = verify_manifest(folder, manifest_sha256)
        return verified, verified.read_files(names)
    except ModelFolderError as exc:
        log.error("%s", exc)
        raise RefusedModelError(str(exc)) from exc
