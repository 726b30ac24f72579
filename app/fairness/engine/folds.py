"""Across-fold spread of pooled out-of-fold predictions: mean, sd and count of per-fold values.

A study pools the out-of-fold predictions of its fold models into one report; the pooled value is
the estimate, and the spread of the same metric computed on each fold's own samples shows how much
a single split would have moved it. Per-fold values come from the kernel itself, with each fold's
0/1 mask as the weights (``weighted_totals``: a fold's own positives and negatives are the
denominators), so a fold's value is exactly what a report on that fold's samples alone would show.

Rules (documented in docs/metrics.md):
- A fold enters a group's metric only when the metric's denominator in that fold meets
  ``min_count`` (the report's own status rule); other folds are listed in ``skipped`` with their
  status.
- A gap is computed in a fold over the groups the pooled gap used, and only when every one of them
  is ``ok`` in that fold for every metric the gap uses, so every fold's value compares the same
  groups as the pooled value (a fold is never allowed to drop the small groups the pooled gap kept).
- ``sd`` is the sample standard deviation (ddof = 1), null with fewer than two folds.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.evaluate import num
from app.fairness.engine.gaps import GAPS, gap_values
from app.fairness.engine.kernel import ColumnPlan, column_block
from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED, status_of

SPREAD_METRICS = ("auc", "pf", "tpr", "fpr")
MAX_FOLDS = 1000  # fold masks are one kernel row each; a study has K × seeds of them


def fold_masks(fold_codes: np.ndarray, n_folds: int) -> np.ndarray:
    """``(n_folds, n)`` uint8: row f marks the samples predicted by fold model f."""
    return (fold_codes[None, :] == np.arange(n_folds)[:, None]).astype(np.uint8)


def spread_of(values: np.ndarray, statuses: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Mean, sd and count of the per-fold ``values`` whose status is ok, and the folds skipped."""
    kept = (statuses == OK) & np.isfinite(values)
    statuses = np.where((statuses == OK) & ~kept, UNDEFINED, statuses)
    used = values[kept]
    return {
        "mean": num(used.mean()) if len(used) else None,
        "sd": num(used.std(ddof=1)) if len(used) >= 2 else None,
        "n": len(used),
        "skipped": [{"fold": labels[f], "status": str(statuses[f])} for f in np.flatnonzero(~kept)],
    }


def annotate_folds(
    groupings: list[dict],
    plan: ColumnPlan,
    y: np.ndarray,
    fold_codes: np.ndarray,
    labels: tuple[str, ...],
    min_count: int,
) -> None:
    """Add ``folds`` (mean, sd, n, skipped) beside each spread metric of every group and every gap
    of one evaluation's ``groupings`` (``y`` and ``fold_codes`` in the design's internal order)."""
    n_folds = len(labels)
    per_fold = column_block(plan, fold_masks(fold_codes, n_folds), dtype=np.float64, weighted_totals=True)
    is_pos = y.astype(bool)
    neg_total = np.bincount(fold_codes[~is_pos], minlength=n_folds)
    for gp, entry in zip(plan.groupings, groupings, strict=True):
        k = gp.grouping.n_groups
        codes = gp.grouping.codes
        member = codes >= 0
        key = fold_codes * k + codes
        n_pos = np.bincount(key[member & is_pos], minlength=n_folds * k).reshape(n_folds, k)
        n_neg = np.bincount(key[member & ~is_pos], minlength=n_folds * k).reshape(n_folds, k)
        statuses = {
            "auc": status_of(np.minimum(n_pos, n_neg), min_count),
            "pf": status_of(np.minimum(n_pos, neg_total[:, None]), min_count),
            "tpr": status_of(n_pos, min_count),
            "fpr": status_of(n_neg, min_count),
            "tnr": status_of(n_neg, min_count),
            "selection_rate": status_of(n_pos + n_neg, min_count),
        }
        arrays = per_fold[gp.grouping.attribute]
        for g, group in enumerate(entry["groups"]):
            for metric in SPREAD_METRICS:
                group["metrics"][metric]["folds"] = spread_of(arrays[metric][:, g], statuses[metric][:, g], labels)
        for name, gap in entry.get("gaps", {}).items():
            if gap["status"] != OK:
                continue
            sources, _ = GAPS[name]
            used = np.isin(np.array(gp.grouping.labels, dtype=object), gap["groups_used"])
            status = worst_per_fold([statuses[m][:, used] for m in sources])
            gap["folds"] = spread_of(gap_values(name, arrays, used), status, labels)


_SEVERITY = np.array([OK, INSUFFICIENT, UNDEFINED], dtype=object)


def worst_per_fold(statuses: list[np.ndarray]) -> np.ndarray:
    """``(n_folds,)`` worst status over the groups and metrics of ``(n_folds, k_i)`` status arrays."""
    rank = np.max([((s == INSUFFICIENT) * 1 + (s == UNDEFINED) * 2).max(axis=1) for s in statuses], axis=0)
    return _SEVERITY[rank]
