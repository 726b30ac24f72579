"""AUC and positive fractions of one score column, every sample counted once.

What model selection needs: training picks its best epoch and its exit thresholds on the validation
split with these (``app.training``). They are the report's own rank sums (``kernel.RankPass``, ties
count ½, docs/metrics.md) with every weight 1, so the number a model was selected on and the number
its report shows are one computation, not two that could drift apart.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.kernel import RankPass


def _twice_u(y: np.ndarray, s: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n_groups,)``: 2 × Mann–Whitney U of each group's positives against all negatives
    (positives with code -1 are in no group; every negative counts)."""
    order = np.argsort(s, kind="stable")
    ordered = s[order]
    rank = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])]).astype(np.int64)
    is_pos = (y == 1)[order]
    rank_pass = RankPass.build(
        order,
        rank,
        is_pos,
        np.zeros(len(s), dtype=np.int64),  # one negative group: everyone
        np.asarray(codes, dtype=np.int64)[order],
        n_groups,
        np.zeros(n_groups, dtype=np.int64),
    )
    twice_u: np.ndarray = rank_pass.twice_u(np.ones((1, len(s)), dtype=np.uint8))[0]
    return twice_u


def positive_fractions(y: np.ndarray, s: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """PF_k for k in 0..n_groups-1: group k's positives against all negatives; NaN without positives."""
    pf = np.full(n_groups, np.nan)
    n_neg = int((y == 0).sum())
    if n_neg == 0 or len(s) == 0 or n_groups == 0:
        return pf
    n_pos = np.bincount(codes[(y == 1) & (codes >= 0)], minlength=n_groups)
    np.divide(_twice_u(y, s, codes, n_groups), 2.0 * n_pos * n_neg, out=pf, where=n_pos > 0)
    return pf


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC; NaN when either class is absent."""
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float(_twice_u(y, s, np.zeros(len(s), dtype=np.int64), 1)[0] / (2.0 * n_pos * n_neg))


def pfd(pf: np.ndarray) -> float:
    """max_k PF_k − min_k PF_k over groups where PF is defined; NaN with fewer than two."""
    defined = pf[~np.isnan(pf)]
    return float(defined.max() - defined.min()) if len(defined) >= 2 else float("nan")
