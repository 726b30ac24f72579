"""The preprocessing formula, in one place: ``(pixel / 255 − mean) / std`` per channel, in float32.

Mean and std are fixed, stated constants — ImageNet's for RGB, their channel average for grey — not
statistics of a training split, so a model's preprocessing never depends on which images it was
trained on, and a model folder states it completely. Training (``app.training.data.Normalizer``, the
torch twin that runs on the training device) uses these constants; serving and the evaluation job
apply ``Preprocessing.normalise`` with the values read from the model's verified ``model.json``. The
operations and their order are the same in both (float32 pixels, divide by 255, subtract, divide),
so the tensors agree bit for bit (``tests/modelpkg/test_preprocessing.py``).

Decoding (format sniffing, centre crop, resize, channel conversion) is not here: it belongs to
ingestion (``app.cohorts.images``), which serving reuses so a served image becomes the same pixels
as the same image in a training cohort. ``model.json`` records what it does (``channel_handling``,
``resize``) so a folder is understood without the code.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from app.modelpkg.base import Section

PIXEL_MAX = 255.0
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)


def normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for 1 (grey) or 3 (RGB) channels, applied after scaling pixels to [0, 1]."""
    if channels not in (1, 3):
        raise ValueError(f"images have 1 or 3 channels, not {channels}")
    return (GREY_MEAN, GREY_STD) if channels == 1 else (RGB_MEAN, RGB_STD)


class Resize(Section):
    height: int = Field(ge=1, description="pixels, the model input's height")
    width: int = Field(ge=1, description="pixels, the model input's width")
    method: Literal["centre square crop, bilinear antialiased"] = Field(
        default="centre square crop, bilinear antialiased",
        description="how ingestion and serving bring an image to height × width",
    )


class Preprocessing(Section):
    """What turns decoded ``uint8`` pixels into the graphs' input; ``model.json`` → ``preprocessing``."""

    color_mode: Literal["L", "RGB"] = Field(description="L: one grey channel; RGB: three channels")
    channel_handling: Literal[
        "grey input: ITU-R 601-2 luma; RGB input from grey: repeat the grey value; alpha dropped (as at ingestion)"
    ] = Field(
        default="grey input: ITU-R 601-2 luma; RGB input from grey: repeat the grey value; "
        "alpha dropped (as at ingestion)",
        description="how an image with other channels than the model's is converted",
    )
    resize: Resize
    scale: float = Field(description="pixels are multiplied by this (1/255) before mean and std apply")
    mean: list[float] = Field(min_length=1, max_length=3, description="per channel, subtracted after scaling")
    std: list[float] = Field(min_length=1, max_length=3, description="per channel, divides after the mean")
    formula: Literal["(pixel / 255 - mean) / std, per channel"] = Field(
        default="(pixel / 255 - mean) / std, per channel", description="the whole computation, in words"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Preprocessing:
        channels = 1 if self.color_mode == "L" else 3
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"color_mode {self.color_mode} needs {channels} mean and std values")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if abs(self.scale * PIXEL_MAX - 1.0) > 1e-9:
            raise ValueError(f"scale must be 1/{PIXEL_MAX:.0f} (the formula divides by {PIXEL_MAX:.0f})")
        return self

    @classmethod
    def for_image(cls, channels: int, size: int) -> Preprocessing:
        """The preprocessing every model trained here has: the fixed constants for ``channels``."""
        mean, std = normalization(channels)
        return cls(
            color_mode="L" if channels == 1 else "RGB",
            resize=Resize(height=size, width=size),
            scale=1 / PIXEL_MAX,
            mean=list(mean),
            std=list(std),
        )

    @property
    def channels(self) -> int:
        return len(self.mean)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """``uint8`` (N, H, W, C) → normalised float32 (N, C, H, W), contiguous as ONNX Runtime wants it."""
        if pixels.ndim != 4 or pixels.shape[3] != self.channels:
            raise ValueError(f"expected (N, H, W, {self.channels}) pixels, got shape {pixels.shape}")
        shape = (1, self.channels, 1, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self.std, dtype=np.float32).reshape(shape)
        x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(1.0 / self.scale)
        return np.ascontiguousarray((x - mean) / std)
