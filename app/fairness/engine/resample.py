"""Stratified bootstrap resamples as count weights, generated in independently seeded blocks.

A resample draws, within every stratum (finest cell × label) of size m, m samples with replacement.
It is stored as a count per sample (how often it was drawn): statistics then become weighted sums
over a fixed, pre-sorted order, so no resample is ever sorted. Counts are ``uint8``: a count of a
Multinomial(m, 1/m) cell above 255 has probability below 1e-500.

Block ``i`` uses its own generator spawned from ``seed``, so results do not depend on how many
blocks run in parallel, and a paired comparison that uses the same seed and strata sees exactly the
same resamples for every model.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def resample_block(strata_bounds: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, n)`` uint8 counts; samples in internal order, each stratum a contiguous block.

    Draws are made per stratum for the whole block (integer draws, cheaper than scaled floats) unless
    there are very many strata; counting is one row at a time so that it stays in cache.
    """
    n = int(strata_bounds[-1])
    draws = np.empty((size, n), dtype=np.int64)
    if len(strata_bounds) - 1 <= MANY_STRATA:
        for start, end in pairwise(strata_bounds):
            draws[:, start:end] = rng.integers(start, end, size=(size, end - start))
    else:
        lengths = np.diff(strata_bounds)
        scaled = rng.random((size, n)) * np.repeat(lengths, lengths)
        np.add(scaled.astype(np.int64), np.repeat(strata_bounds[:-1], lengths), out=draws)
    out = np.empty((size, n), dtype=np.uint8)
    for row in range(size):
        out[row] = np.bincount(draws[row], minlength=n)
    return out


def resample_blocks(
    strata_bounds: np.ndarray, n_boot: int, seed: int, block: int | None = None
) -> Iterator[tuple[int, np.random.Generator, int]]:
    """(first resample index, generator, block size) for each block of ``n_boot`` resamples."""
    sizes = block_sizes(n_boot, block or block_size(int(strata_bounds[-1])))
    children = np.random.SeedSequence(seed).spawn(len(sizes))
    start = 0
    for size, child in zip(sizes, children, strict=True):
        yield start, np.random.default_rng(child), size
        start += size
