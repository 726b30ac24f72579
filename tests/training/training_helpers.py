"""Synthetic cohort caches with a learnable, group-dependent signal for the training tests.

Binary cohorts (``write_cohort``, a cache folder): positives carry a bright centred square; its
contrast is lower for ``sex=M`` (a planted bias, so groups rank differently); pixel noise keeps the
task from being trivial. A few attribute values
are missing (``None``) to exercise the missing-group path. Multiclass and multilabel cohorts
(``task_cohort``) are built in memory, as ingestion would hand them over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.cohorts.cache import CohortArrays, load_cohort_arrays, write_items
from app.cohorts.image_store import create_image_store
from app.modelpkg.task import Task
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


def task_cohort(
    task: Task, *, n: int = 240, size: int = 16, seed: int = 0, unknown: float = 0.1, images: bool = True
) -> CohortArrays:
    """An in-memory multiclass or multilabel cohort with a learnable, group-dependent signal.

    Class c (multiclass) or finding f (multilabel) brightens its own horizontal band of the image,
    less for ``sex=M`` (the planted bias). Multilabel entries are unknown (-1) at rate ``unknown``,
    never every finding of a row. ``images=False`` leaves the pixels blank (label-only checks)."""
    rng = np.random.default_rng(seed)
    width = task.width
    if task.kind == "multiclass":
        labels = rng.integers(0, width, n)
        present = np.eye(width, dtype=bool)[labels]
    else:
        labels = (rng.random((n, width)) < 0.4).astype(np.int64)
        present = labels == 1
        hidden = rng.random((n, width)) < unknown
        hidden[hidden.all(axis=1), 0] = False
        labels[hidden] = -1
    sex = rng.choice(["F", "M"], n)
    pixels = rng.normal(100, 20, size=(n, size, size, 3))
    if images:
        band = size // width
        amplitude = np.where(sex == "F", 40.0, 25.0)
        for j in range(width):
            pixels[:, j * band : (j + 1) * band, :, :] += (amplitude * present[:, j])[:, None, None, None]
    split = np.array(["train"] * (n * 3 // 5) + ["val"] * (n // 5) + ["test"] * (n - n * 3 // 5 - n // 5))

    def obj(values: list[object]) -> np.ndarray:
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column

    return CohortArrays(
        images=np.clip(pixels, 0, 255).astype(np.uint8),
        labels=labels.astype(np.int8),
        split=obj(split.tolist()),
        item_ids=obj([f"item{i:04d}" for i in range(n)]),
        patient_ids=obj([f"p{i}" for i in range(n)]),
        attributes={"sex": obj(sex.tolist()), "age_group": obj(rng.choice(["<60", ">=60"], n).tolist())},
        task=task,
    )
