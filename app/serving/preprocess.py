"""Prediction inputs get exactly the preprocessing the model was trained with, read from its model.json.

Decoding and resizing go through ``app.cohorts.images.decode_image``, the function ingestion used to
build the training cache, so a served image and the same image in a cohort become the same pixels
(same sniffed formats, bomb and truncation guards, centre crop, bilinear resize, DICOM rendering).

Channels: a greyscale image sent to an RGB model is converted, not refused — repeating the grey value
is what ingestion did to greyscale files in the training cohort, and model.json records that rule
(``preprocessing.channel_handling``); likewise colour to a greyscale model becomes ITU-R 601-2 luma.

Normalisation: ``(pixel / 255 − mean) / std`` per channel in float32, the same operations in the same
order as the trainer's ``Normalizer``, so the tensors match bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, decode_image, refusal_status
from app.core.errors import ConflictError, InputError


@dataclass(frozen=True)
class Preprocessing:
    size: int
    channels: int
    divisor: np.float32  # 1 / scale (255)
    mean: np.ndarray  # (1, C, 1, 1) float32
    std: np.ndarray  # (1, C, 1, 1) float32

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Preprocessing:
        """Refuses (409) a model.json describing an input this service cannot produce."""
        try:
            spec, prep = manifest["input"], manifest["preprocessing"]
            size, channels = int(spec["height"]), int(spec["channels"])
            supported = (
                spec["layout"] == "NCHW"
                and spec["dtype"] == "float32"
                and int(spec["width"]) == size
                and channels in (1, 3)
                and len(prep["mean"]) == len(prep["std"]) == channels
            )
            shape = (1, channels, 1, 1)
            if supported:
                return cls(
                    size=size,
                    channels=channels,
                    divisor=np.float32(1.0 / float(prep["scale"])),
                    mean=np.asarray(prep["mean"], dtype=np.float32).reshape(shape),
                    std=np.asarray(prep["std"], dtype=np.float32).reshape(shape),
                )
        except (KeyError, TypeError, ValueError):
            pass
        raise ConflictError(
            "the model's model.json does not describe a square NCHW float32 input with 1 or 3 channels "
            "and per-channel mean/std; it cannot be served"
        )

    def decode(self, images: Sequence[bytes], names: Sequence[str], limits: ImageLimits) -> np.ndarray:
        """``(n, size, size, C)`` uint8; every unusable image is named in one 413 (all only too large)
        or 422."""
        out = np.empty((len(images), self.size, self.size, self.channels), dtype=np.uint8)
        errors, refused = [], []
        for i, (data, name) in enumerate(zip(images, names, strict=True)):
            try:
                out[i] = decode_image(data, self.size, self.channels, limits)
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

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC → normalised float32 NCHW (contiguous, as ONNX Runtime wants it)."""
        x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / self.divisor
        return np.ascontiguousarray((x - self.mean) / self.std)
