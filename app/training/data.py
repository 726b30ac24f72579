"""Batches straight from the decoded image cache: stratified sampling, memmap reads, normalisation.

Images stay ``uint8`` until they reach the training device (4× less to copy); the NHWC cache rows
become an NCHW view in channels-last memory, the layout the convolutions run fastest in.
Normalisation is the model format's (``app.modelpkg.preprocessing``: fixed constants, one formula);
``Normalizer`` is its torch twin, run on the training device.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from app.modelpkg.preprocessing import PIXEL_MAX, normalization


class Normalizer:
    """uint8 NCHW → float in [0, 1] → (x − mean) / std, on the batch's device: the same constants and
    the same float32 operations, in the same order, as ``Preprocessing.normalise`` (tested equal)."""

    def __init__(self, channels: int, device: torch.device) -> None:
        mean, std = normalization(channels)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    @staticmethod
    def to_unit(x: Tensor) -> Tensor:
        return x.float().div_(PIXEL_MAX)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def __call__(self, x: Tensor) -> Tensor:
        return self.normalize(self.to_unit(x))


@dataclass(frozen=True)
class Batch:
    images: Tensor  # (N, C, H, W) uint8, channels-last memory
    labels: Tensor  # float32: (N,) 0/1 or class index; (N, F) 0/1/-1 for multi-label
    groups: Tensor  # (N,) int64, -1 = missing
    index: np.ndarray  # cohort row of each sample


class BatchReader:
    """Reads cohort rows into device tensors, optionally ``workers`` batches ahead in threads.

    Memmap gathers and host→device copies release the GIL, so a thread hides disk reads behind compute.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, codes: np.ndarray, device: torch.device, workers: int
    ) -> None:
        self.images, self.labels, self.codes = images, labels, codes
        self.device, self.workers = device, workers

    def load(self, index: np.ndarray) -> Batch:
        rows = np.sort(index)  # sequential reads; order within a batch does not matter
        pixels = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
        labels = torch.from_numpy(self.labels[rows].astype(np.float32))
        groups = torch.from_numpy(self.codes[rows])
        if self.device.type == "cuda":
            pixels, labels, groups = (t.pin_memory() for t in (pixels, labels, groups))
        return Batch(
            images=pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2),
            labels=labels.to(self.device, non_blocking=True),
            groups=groups.to(self.device, non_blocking=True),
            index=rows,
        )

    def iterate(self, batches: Sequence[np.ndarray]) -> Iterator[Batch]:
        if self.workers == 0:
            yield from map(self.load, batches)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="batch-reader") as pool:
            pending = deque(pool.submit(self.load, b) for b in batches[: self.workers + 1])
            for nxt in batches[self.workers + 1 :]:
                batch = pending.popleft().result()
                pending.append(pool.submit(self.load, nxt))
                yield batch
            while pending:
                yield pending.popleft().result()


def sequential_batches(index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [index[i : i + batch_size] for i in range(0, len(index), batch_size)]


def _quotas(counts: np.ndarray, priority: np.ndarray, batch_size: int) -> np.ndarray:
    """Per-stratum samples per batch: proportional (largest remainder) with at least one per stratum
    while other strata can spare one; ``priority`` strata (positives of a known group) are served first."""
    share = counts / counts.sum() * batch_size
    quota = np.floor(share).astype(np.int64)
    for s in sorted(np.flatnonzero(quota == 0), key=lambda s: not priority[s]):
        if quota.sum() >= batch_size:
            donors = np.flatnonzero(quota > 1)
            if len(donors) == 0:
                break
            quota[donors[np.argmax((quota - share)[donors])]] -= 1
        quota[s] = 1
    while quota.sum() < batch_size:
        quota[np.argmax(share - quota)] += 1
    return quota


def stratified_batches(
    index: np.ndarray,
    labels: np.ndarray,
    codes: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    *,
    prioritised: tuple[int, ...] = (1,),
    class_balanced: bool = False,
) -> list[np.ndarray]:
    """One epoch of ``len(index) // batch_size`` full batches, each stratified by label × group.

    ``labels`` are stratum labels (``app.training.strata.stratum_labels``). Every stratum is represented
    in every batch when the batch has room (``prioritised`` labels' known groups first), so the worst
    group's positives are always there for the hinge; small strata are recycled with a fresh shuffle
    each pass, large ones are seen about once per epoch. ``class_balanced``: each label gets the same
    share of every batch (inverse class frequency), its groups in proportion within it.
    """
    width = int(codes.max()) + 2  # group codes shifted by one: 0 = missing
    strata = labels[index].astype(np.int64) * width + (codes[index] + 1)
    keys, inverse = np.unique(strata, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(keys))
    priority = np.isin(keys // width, prioritised) & (keys % width != 0)
    weights = counts.astype(np.float64)
    if class_balanced:
        _, label_index = np.unique(keys // width, return_inverse=True)
        weights = counts / np.bincount(label_index, weights=counts)[label_index]
    quota = _quotas(weights, priority, batch_size)
    n_batches = max(1, len(index) // batch_size)
    parts = []
    for s, q in enumerate(quota):
        members = index[inverse == s]
        need = int(q) * n_batches
        passes = -(-need // len(members)) if need else 0
        draw = np.concatenate([rng.permutation(members) for _ in range(passes)]) if passes else members[:0]
        parts.append(draw[:need].reshape(n_batches, int(q)))
    return [np.concatenate([p[b] for p in parts]) for b in range(n_batches)]
