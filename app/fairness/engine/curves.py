"""Curves for the report: downsampled ROC per group and reliability (calibration) points per group."""

from __future__ import annotations

import numpy as np

from app.fairness.engine.kernel import ece_bins

MAX_ROC_POINTS = 101


def roc_points(y: np.ndarray, scores: np.ndarray, max_points: int = MAX_ROC_POINTS) -> dict | None:
    """ROC vertices (one per distinct score, from (0, 0) to (1, 1)), at most ``max_points`` of them.

    Downsampling keeps real vertices, evenly spaced in vertex index, always with both ends.
    None when the group lacks a class (no curve exists).
    """
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    last_of_tie = np.concatenate([s[1:] != s[:-1], [True]])
    tps = np.cumsum(t)[last_of_tie]
    fps = np.cumsum(~t)[last_of_tie]
    tpr = np.concatenate([[0.0], tps / n_pos])
    fpr = np.concatenate([[0.0], fps / n_neg])
    if len(tpr) > max_points:
        keep = np.unique(np.linspace(0, len(tpr) - 1, max_points).round().astype(np.int64))
        tpr, fpr = tpr[keep], fpr[keep]
    return {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()}


def reliability(y: np.ndarray, scores: np.ndarray, codes: np.ndarray, n_groups: int, n_bins: int) -> list[list[dict]]:
    """Per group, per non-empty ECE bin: count, mean score and observed positive fraction."""
    keep = codes >= 0
    key = codes[keep] * n_bins + ece_bins(scores[keep], n_bins)
    size = n_groups * n_bins
    count = np.bincount(key, minlength=size).reshape(n_groups, n_bins)
    score_sum = np.bincount(key, weights=scores[keep], minlength=size).reshape(n_groups, n_bins)
    pos_sum = np.bincount(key, weights=y[keep].astype(np.float64), minlength=size).reshape(n_groups, n_bins)
    out = []
    for g in range(n_groups):
        out.append(
            [
                {
                    "bin": int(b),
                    "count": int(count[g, b]),
                    "mean_score": round(float(score_sum[g, b] / count[g, b]), 4),
                    "observed": round(float(pos_sum[g, b] / count[g, b]), 4),
                }
                for b in np.flatnonzero(count[g])
            ]
        )
    return out
