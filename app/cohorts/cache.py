"""The decoded image cache: every cohort image decoded and resized once, read by training directly.

Layout of a cache folder (all files written by ingestion, read-only afterwards):

- ``images.u8``  raw ``uint8`` array of shape ``(n, size, size, channels)``, C order, read as a
  memory map so a training process touches only the pages it uses.
- ``items.json`` per-item metadata in item order: ids, labels, splits, patient ids, attributes
  (group labels as strings; ``null`` = missing), plus the shape above, the cohort's groupings
  (``groupings.py``; optional), whose derived attributes ``load_cohort_arrays`` adds, and its task
  (``app.modelpkg.task.Task``; optional: a cache written before tasks existed is binary). Labels per
  task: binary 0/1, multiclass the class index, multilabel a list of 1/0/-1 per item.

The folder is self-contained so a worker on another machine (Ray, shared path) needs no database.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from app.cohorts.groupings import Grouping, derive, parse_groupings
from app.cohorts.image_store import IMAGES_FILE
from app.modelpkg.task import BINARY, Task

ITEMS_FILE = "items.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CohortArrays:
    """A cohort's decoded images and labels, as training and evaluation consume them."""

    images: np.ndarray  # (n, size, size, channels) uint8, usually a read-only memmap
    labels: np.ndarray  # by task (app.modelpkg.task): (n,) 0/1, (n,) class index, or (n, F) 0/1/-1
    split: np.ndarray  # (n,) object: "train" | "val" | "test"
    item_ids: np.ndarray  # (n,) object
    patient_ids: np.ndarray  # (n,) object; None where unknown
    attributes: Mapping[str, np.ndarray]  # name -> (n,) object of str, None = missing
    task: Task = BINARY  # what the labels mean; binary for caches written before tasks existed

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def with_groupings(self, groupings: Sequence[Grouping]) -> CohortArrays:
        """These arrays with each grouping's derived attribute added (``groupings.derive``): the one place
        derived attributes are made, for training, evaluation and anything else that loads a cohort."""
        if not groupings:
            return self
        return dataclasses.replace(self, attributes=derive(self.attributes, groupings))


def write_items(
    folder: Path,
    *,
    size: int,
    channels: int,
    item_ids: Sequence[str],
    labels: Sequence[int] | Sequence[Sequence[int]],
    split: Sequence[str],
    patient_ids: Sequence[str | None],
    attributes: Mapping[str, Sequence[str | None]],
    groupings: Sequence[Grouping] = (),
    task: Task = BINARY,
) -> None:
    """Write the metadata file last and atomically: its presence marks the cache complete."""
    meta = {
        "format_version": FORMAT_VERSION,
        "n": len(item_ids),
        "size": size,
        "channels": channels,
        "item_ids": list(item_ids),
        "labels": _json_labels(labels, task),
        "split": list(split),
        "patient_ids": list(patient_ids),
        "attributes": {k: list(v) for k, v in attributes.items()},
        "groupings": [g.model_dump(mode="json") for g in groupings],
        "task": task.model_dump(mode="json"),
    }
    tmp = folder / (ITEMS_FILE + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, folder / ITEMS_FILE)


def _json_labels(labels: Sequence[int] | Sequence[Sequence[int]], task: Task) -> list[int] | list[list[int]]:
    if task.kind == "multilabel":
        return [[int(f) for f in v] for v in cast(Sequence[Sequence[int]], labels)]
    return [int(v) for v in cast(Sequence[int], labels)]


def is_complete(folder: Path) -> bool:
    return (folder / ITEMS_FILE).exists()


def sync_cache(folder: Path) -> None:
    """Make a finished cache durable (its files and their folder entries): the uploaded originals it
    was decoded from are deleted next, so it could not be rebuilt after a power cut."""
    for path in (folder / IMAGES_FILE, folder / ITEMS_FILE, folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_cohort_arrays(folder: Path) -> CohortArrays:
    """Open a finished cache read-only, with the cohort's groupings' derived attributes."""
    meta_path = folder / ITEMS_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"no complete image cache in {folder}")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache format {meta.get('format_version')} is not supported")
    n, size, channels = meta["n"], meta["size"], meta["channels"]
    images = np.memmap(folder / IMAGES_FILE, dtype=np.uint8, mode="r", shape=(n, size, size, channels))

    def obj(values: list) -> np.ndarray:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr

    task = Task.model_validate(meta.get("task") or {})
    labels = np.asarray(meta["labels"], dtype=np.int64 if task.kind == "multiclass" else np.int8)
    if task.kind == "multilabel":
        labels = labels.reshape(n, task.width)  # (0, F) when empty
    arrays = CohortArrays(
        images=images,
        labels=labels,
        split=obj(meta["split"]),
        item_ids=obj(meta["item_ids"]),
        patient_ids=obj(meta["patient_ids"]),
        attributes={k: obj(v) for k, v in meta["attributes"].items()},
        task=task,
    )
    return arrays.with_groupings(parse_groupings(meta.get("groupings")))
