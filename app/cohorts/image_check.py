"""Upload-time image checks: every listed image's header, before a cohort upload is accepted.

Truncated, unsupported (GIF, TIFF, …), oversized or pixel-less files used to be accepted and fail
the ingestion job later; ``images.check_image_file`` catches them cheaply (headers and end markers,
no pixel decoded), and one error names every bad file: the first ``MAX_LISTED``, then how many more.
The files are read from the uploaded archive (``archive.CheckedArchive.read``), never extracted.
The answer is 413 when every bad file is only over a size limit, else 422.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, check_image_file, refusal_status
from app.cohorts.manifest import ImageReader, ManifestItem
from app.core.errors import InputError

MAX_LISTED = 100


def check_listed_images(read_images: ImageReader, items: Sequence[ManifestItem], limits: ImageLimits) -> None:
    """Check each item's file (as ``read_images`` yields them); raise one ``InputError`` naming the bad
    ones in row order."""
    position = {item.image: i for i, item in enumerate(items)}
    found: dict[int, ImageDecodeError] = {}
    for image, source in read_images(list(position)):
        try:
            check_image_file(source, limits)
        except ImageDecodeError as exc:
            found[position[image]] = exc
    if not found:
        return
    refused = [(items[i], found[i]) for i in sorted(found)]
    errors: list[dict[str, Any]] = [
        {"row": item.row, "file": item.image, "message": str(exc)} for item, exc in refused[:MAX_LISTED]
    ]
    if len(refused) > MAX_LISTED:
        errors.append({"message": f"and {len(refused) - MAX_LISTED} more image(s) that cannot be used"})
    raise InputError(
        f"{len(refused)} image(s) cannot be used", errors, status=refusal_status(exc for _, exc in refused)
    )
