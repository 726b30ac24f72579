"""Synthetic cohort caches with a learnable, group-dependent signal for the training tests.

Positives carry a bright centred square; its contrast is lower for ``sex=M`` (a planted bias, so
groups rank differently); pixel noise keeps the task from being trivial. A few attribute values
are missing (``None``) to exercise the missing-group path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.cohorts.cache import CohortArrays, create_image_store, load_cohort_arrays, write_items
from app.training.config import Augmentation, TrainingConfig

MakeCohort = Callable[..., CohortArrays]


def write_cohort(
    folder: Path,
    *,
    n: int = 480,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    prevalence: float = 0.3,
    missing: float = 0.04,
) -> CohortArrays:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(int)
    sex = rng.choice(["F", "M"], n)
    age = rng.choice(["<60", ">=60"], n, p=[0.6, 0.4])
    split = rng.choice(["train", "val", "test"], n, p=[0.6, 0.2, 0.2])
    images = create_image_store(folder, n, size, channels)
    pixels = rng.normal(100, 30, size=(n, size, size, channels))
    lo, hi = size // 2 - size // 8, size // 2 + size // 8
    amplitude = np.where(sex == "F", 14.0, 7.0) * labels
    pixels[:, lo:hi, lo:hi, :] += amplitude[:, None, None, None]
    images[:] = np.clip(pixels, 0, 255).astype(np.uint8)
    images.flush()
    sex_values: list[str | None] = [None if rng.random() < missing else s for s in sex]
    write_items(
        folder,
        size=size,
        channels=channels,
        item_ids=[f"item{i:05d}" for i in range(n)],
        labels=labels.tolist(),
        split=split.tolist(),
        patient_ids=[f"p{i}" for i in range(n)],
        attributes={"sex": sex_values, "age_group": age.tolist()},
    )
    return load_cohort_arrays(folder)


def small_config(**overrides: object) -> TrainingConfig:
    """A few-second CPU run: small backbone, no augmentation, fixed seed."""
    base: dict[str, object] = {
        "method": "erm",
        "sensitive_attributes": ["sex"],
        "backbone": "small",
        "epochs": 2,
        "batch_size": 32,
        "lr": 3e-3,
        "augment": Augmentation.off(),
        "patience": None,
        "num_workers": 0,
        "device": "cpu",
    }
    return TrainingConfig.model_validate({**base, **overrides})
