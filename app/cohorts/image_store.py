"""The cache's image array on disk (``images.u8``, layout in ``cache.py``), apart from its metadata.

A module of its own so ingestion's decoding processes, which only fill rows, import numpy and
nothing of the cache's metadata (pydantic models, groupings): every spawned process pays its
imports before its first image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGES_FILE = "images.u8"


def create_image_store(folder: Path, n: int, size: int, channels: int) -> np.memmap:
    """Allocate the image array on disk; ingestion workers fill rows by index."""
    folder.mkdir(parents=True, exist_ok=True)
    return np.memmap(folder / IMAGES_FILE, dtype=np.uint8, mode="w+", shape=(n, size, size, channels))


def open_image_store(folder: Path, n: int, size: int, channels: int) -> np.memmap:
    """Open an allocated image array for writing rows (e.g. from a decoding worker process)."""
    return np.memmap(folder / IMAGES_FILE, dtype=np.uint8, mode="r+", shape=(n, size, size, channels))
