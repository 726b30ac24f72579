"""The few ranking metrics training needs for model selection (AUC, PF per group, PFD).

The audit report is the metrics engine's job (``app.fairness.engine``); these are the same
definitions (docs/methods.md §1, ties count ½), kept here so training does not depend on the engine.
"""

from __future__ import annotations

import numpy as np


def _wins_over_negatives(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, int]:
    """For each positive: the number of negatives it outranks (ties ½); and the number of negatives."""
    neg = np.sort(s[y == 0])
    sp = s[y == 1]
    below = np.searchsorted(neg, sp, side="left")
    at_or_below = np.searchsorted(neg, sp, side="right")
    return below + 0.5 * (at_or_below - below), len(neg)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC; NaN when either class is absent."""
    wins, n_neg = _wins_over_negatives(y, s)
    if n_neg == 0 or len(wins) == 0:
        return float("nan")
    return float(wins.mean() / n_neg)


def positive_fractions(y: np.ndarray, s: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """PF_k for k in 0..n_groups-1: group k's positives against all negatives; NaN without positives."""
    wins, n_neg = _wins_over_negatives(y, s)
    pf = np.full(n_groups, np.nan)
    if n_neg == 0:
        return pf
    pos_codes = codes[y == 1]
    known = pos_codes >= 0
    sums = np.bincount(pos_codes[known], weights=wins[known], minlength=n_groups)
    counts = np.bincount(pos_codes[known], minlength=n_groups)
    np.divide(sums, counts * n_neg, out=pf, where=counts > 0)
    return pf


def pfd(pf: np.ndarray) -> float:
    """max_k PF_k − min_k PF_k over groups where PF is defined; NaN with fewer than two."""
    defined = pf[~np.isnan(pf)]
    return float(defined.max() - defined.min()) if len(defined) >= 2 else float("nan")
