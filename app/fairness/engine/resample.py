"""Stratified bootstrap resamples as count weights, generated in independently seeded blocks.

A resample draws, within every stratum (finest cell × label) of size m, m samples with replacement.
With clusters (a patient's images), it draws clusters instead: a stratum holding m clusters draws m
of them with replacement, and every sample of a drawn cluster gets its cluster's count, so a
patient's images move together. A cluster belongs to the stratum of its first sample (in the
caller's order); a patient whose images span cells or labels is still drawn as one unit. Clusters
are numbered in the order of their first sample's internal position, so when every cluster is a
single sample the draws, and so every result, are exactly those of the unclustered bootstrap.
It is stored as a count per sample (how often it was drawn): statistics then become weighted sums
over a fixed, pre-sorted order, so no resample is ever sorted. Counts are ``uint8``: a count of a
Multinomial(m, 1/m) cell above 255 has probability below 1e-500.

Block ``i`` uses its own generator spawned from ``seed``, so results do not depend on how many
blocks run in parallel, and a paired comparison that uses the same seed and strata sees exactly the
same resamples for every model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np


def block_size(n: int) -> int:
    """Resamples per block: ~3M sample-weights, enough to amortise Python overhead, small enough to
    keep a block's intermediate arrays in cache (32 at n = 100,000)."""
    return max(4, min(64, 3_200_000 // max(n, 1)))


def block_sizes(n_boot: int, block: int) -> list[int]:
    """Sizes of the blocks that make up ``n_boot`` resamples."""
    return [min(block, n_boot - start) for start in range(0, n_boot, block)]


MANY_STRATA = 2048  # above this, one vectorised draw beats a call per stratum


@dataclass(frozen=True)
class Clusters:
    """Clusters in resampling order: ``bounds`` delimit each stratum's clusters (as ``strata_bounds``
    delimit its samples) and ``members`` gives each sample's cluster, in internal order."""

    bounds: np.ndarray  # (n_strata + 1,)
    members: np.ndarray  # (n,)

    @classmethod
    def build(cls, keys: np.ndarray, strata_bounds: np.ndarray, order: np.ndarray) -> Clusters:
        """``keys``: a cluster key per sample in the caller's order (``None``: a cluster of its own)."""
        raw = np.asarray(keys, dtype=object)
        missing = np.array([k is None for k in raw], dtype=bool)
        text = np.array([str(k) for k in raw], dtype=object)
        text[missing] = [f"\0{i}" for i in np.flatnonzero(missing)]  # unique: cannot collide with a key
        _, code = np.unique(text, return_inverse=True)
        internal = code.reshape(-1)[order]
        n_clusters = int(internal.max()) + 1
        caller_first = np.full(n_clusters, len(order), dtype=np.int64)
        np.minimum.at(caller_first, internal, order)
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        home = position[caller_first]  # internal position of each cluster's first sample (caller's order)
        rank = np.empty(n_clusters, dtype=np.int64)
        rank[np.argsort(home, kind="stable")] = np.arange(n_clusters)
        stratum = np.searchsorted(strata_bounds, home, side="right") - 1
        counts = np.bincount(stratum, minlength=len(strata_bounds) - 1)
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(bounds, rank[internal])


def resample_block(
    strata_bounds: np.ndarray, size: int, rng: np.random.Generator, clusters: Clusters | None = None
) -> np.ndarray:
    """``(size, n)`` uint8 counts; samples in internal order, each stratum a contiguous block.

    Draws are made per stratum for the whole block (integer draws, cheaper than scaled floats) unless
    there are very many strata; counting is one row at a time so that it stays in cache. With
    ``clusters``, the units drawn are clusters and each sample takes its cluster's count.
    """
    bounds = strata_bounds if clusters is None else clusters.bounds
    units = int(bounds[-1])
    draws = np.empty((size, units), dtype=np.int64)
    if len(bounds) - 1 <= MANY_STRATA:
        for start, end in pairwise(bounds):
            if end > start:
                draws[:, start:end] = rng.integers(start, end, size=(size, end - start))
    else:
        lengths = np.diff(bounds)
        scaled = rng.random((size, units)) * np.repeat(lengths, lengths)
        np.add(scaled.astype(np.int64), np.repeat(bounds[:-1], lengths), out=draws)
    out = np.empty((size, int(strata_bounds[-1])), dtype=np.uint8)
    for row in range(size):
        counts = np.bincount(draws[row], minlength=units)
        out[row] = counts if clusters is None else counts[clusters.members]
    return out


def resample_blocks(
    n: int, n_boot: int, seed: int, block: int | None = None
) -> Iterator[tuple[int, np.random.Generator, int]]:
    """(first resample index, generator, block size) for each block of ``n_boot`` resamples of ``n``."""
    sizes = block_sizes(n_boot, block or block_size(n))
    children = np.random.SeedSequence(seed).spawn(len(sizes))
    start = 0
    for size, child in zip(sizes, children, strict=True):
        yield start, np.random.default_rng(child), size
        start += size
