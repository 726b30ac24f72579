"""Prediction inputs become exactly the tensors the model was trained on.

Decoding and resizing go through ``app.cohorts.images.decode_image``, the function ingestion used to
build the training cache, so a served image and the same image in a cohort become the same pixels
(same sniffed formats, bomb and truncation guards, centre crop, bilinear resize, DICOM rendering).

Channels: a greyscale image sent to an RGB model is converted, not refused — repeating the grey value
is what ingestion did to greyscale files in the training cohort, and model.json records that rule
(``preprocessing.channel_handling``); likewise colour to a greyscale model becomes ITU-R 601-2 luma.

Normalisation is the model format's one formula (``app.modelpkg.preprocessing``), with the mean and
std read from the model's verified model.json.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, decode_image, refusal_status
from app.core.errors import InputError
from app.modelpkg.manifest import InputSpec


def decode_images(images: Sequence[bytes], names: Sequence[str], spec: InputSpec, limits: ImageLimits) -> np.ndarray:
    """``(n, size, size, C)`` uint8 for the model's input; every unusable image is named in one 413
    (all only too large) or 422."""
    out = np.empty((len(images), spec.height, spec.width, spec.channels), dtype=np.uint8)
    errors, refused = [], []
    for i, (data, name) in enumerate(zip(images, names, strict=True)):
        try:
            out[i] = decode_image(data, spec.height, spec.channels, limits)
        except ImageDecodeError as exc:
            errors.append({"image": i, "file": name, "message": str(exc)})
            refused.append(exc)
        except Exception as exc:  # a decoder failing in an unforeseen way is still one bad image
            errors.append({"image": i, "file": name, "message": f"cannot decode: {type(exc).__name__}: {exc}"})
            refused.append(ImageDecodeError())
    if errors:
        status = refusal_status(refused)
        raise InputError(f"{len(errors)} of {len(images)} images cannot be used", errors, status=status)
    return out
