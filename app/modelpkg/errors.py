"""Why a model folder cannot be used. Plain exceptions: this package knows nothing of HTTP or jobs.

Callers decide what a refusal means where they are: serving answers 409 (the request is fine, the
model's state forbids running it), the evaluation job fails with the message.
"""

from __future__ import annotations


class ModelFolderError(Exception):
    """A model folder that must not be run; the message names the folder and what is wrong."""


class ManifestError(ModelFolderError):
    """``model.json`` is not a manifest of the format this service reads (malformed, incomplete,
    inconsistent, or another ``format_version``)."""


class TamperedModelError(ModelFolderError):
    """A file of the folder is missing or differs from its recorded SHA-256."""
