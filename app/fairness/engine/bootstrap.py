"""Run the stratified bootstrap for several score columns on the same resamples.

All columns (the exits and the policy of one model, or the policies of models being compared) see
the same resample weights, block by block: intervals of differences are then paired, and the cost of
drawing resamples is paid once. Blocks run on a small thread pool (numpy releases the GIL in the
heavy loops); each block has its own seed, so results do not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from app.fairness.engine.groups import Design
from app.fairness.engine.kernel import ColumnPlan, GroupArrays, column_block
from app.fairness.engine.resample import resample_block, resample_blocks

BOOT_METRICS = ("auc", "pf", "pf_rest", "tpr", "fpr", "tnr", "selection_rate", "ece", "brier")


def default_workers() -> int:
    """Threads for the bootstrap: the usable cores, at most 4 (more rarely pays on numpy kernels)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def run_bootstrap(
    design: Design,
    plans: Sequence[ColumnPlan],
    n_boot: int,
    seed: int,
    workers: int | None = None,
) -> list[dict[str, GroupArrays]]:
    """Per column: ``{attribute: {metric: (n_boot, n_groups)}}`` for the metrics in ``BOOT_METRICS``."""
    store = [
        {
            gp.grouping.attribute: {m: np.empty((n_boot, gp.grouping.n_groups)) for m in BOOT_METRICS}
            for gp in plan.groupings
        }
        for plan in plans
    ]

    def work(item: tuple[int, np.random.Generator, int]) -> tuple[int, int, list[dict[str, GroupArrays]]]:
        start, rng, size = item
        weights = resample_block(design.strata_bounds, size, rng)
        return start, size, [column_block(plan, weights) for plan in plans]

    blocks = resample_blocks(design.strata_bounds, n_boot, seed)
    n_workers = workers or default_workers()
    if n_workers == 1:
        _collect(map(work, blocks), store)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            _collect(pool.map(work, blocks), store)
    return store


def _collect(
    results: Iterable[tuple[int, int, list[dict[str, GroupArrays]]]], store: list[dict[str, GroupArrays]]
) -> None:
    for start, size, per_column in results:
        for column, result in zip(store, per_column, strict=True):
            for attribute, arrays in result.items():
                for metric in BOOT_METRICS:
                    column[attribute][metric][start : start + size] = arrays[metric]
