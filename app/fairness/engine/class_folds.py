"""Across-fold spread of a multi-class evaluation's pooled out-of-fold predictions.

The rules of ``folds`` per class: each fold's value comes from ``class_kernel`` with the fold's
0/1 mask as weights; a fold enters a group's per-class AUC, PF, TPR or FPR when that metric's
denominator in the fold meets ``min_count``. A class-averaged gap is computed in a fold over the
classes and groups the pooled gap used, and only when every one of them is ok in that fold, so
every fold's value averages the same classes over the same groups as the pooled value; a gap of a
group metric likewise over the pooled gap's groups.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.class_gaps import CLASS_MEAN_GAPS, GROUP_GAPS, class_mean_values, defined_classes
from app.fairness.engine.class_kernel import ClassPlan, class_block
from app.fairness.engine.folds import fold_masks, spread_of, worst_per_fold
from app.fairness.engine.gaps import GAPS, gap_values
from app.fairness.engine.status import OK, status_of

SPREAD_METRICS = ("auc", "pf", "tpr", "fpr")


def _statuses(n_true: np.ndarray, n_neg: np.ndarray, total_neg: np.ndarray, min_count: int) -> dict[str, np.ndarray]:
    """Per-class statuses from ``(..., n_groups, K)`` counts (``total_neg``: broadcastable)."""
    return {
        "auc": status_of(np.minimum(n_true, n_neg), min_count),
        "pf": status_of(np.minimum(n_true, total_neg), min_count),
        "tpr": status_of(n_true, min_count),
        "fpr": status_of(n_neg, min_count),
        "tnr": status_of(n_neg, min_count),
    }


def annotate_class_folds(
    groupings: list[dict],
    plan: ClassPlan,
    fold_codes: np.ndarray,
    labels: tuple[str, ...],
    classes: tuple[str, ...],
    min_count: int,
) -> None:
    """Add ``folds`` beside each per-class AUC, PF, TPR and FPR and each gap of one evaluation's
    ``groupings`` (``fold_codes`` in the design's internal order)."""
    per_fold = class_block(plan, fold_masks(fold_codes, len(labels)), weighted_totals=True)
    overall = np.rint(per_fold["overall"]["n_true"][:, 0, :])  # (folds, K)
    total_neg = (overall.sum(axis=1, keepdims=True) - overall)[:, None, :]
    for gp, entry in zip(plan.groupings, groupings, strict=True):
        arrays = per_fold[gp.grouping.attribute]
        n_true = np.rint(arrays["n_true"])
        n_neg = np.rint(arrays["n"])[:, :, None] - n_true
        statuses = _statuses(n_true, n_neg, total_neg, min_count)
        for g, group in enumerate(entry["groups"]):
            for c, name in enumerate(classes):
                for metric in SPREAD_METRICS:
                    group["per_class"][name][metric]["folds"] = spread_of(
                        arrays[metric][:, g, c], statuses[metric][:, g, c], labels
                    )
        if "gaps" not in entry:
            continue
        pooled_neg = gp.n_true.sum(axis=1, keepdims=True) - gp.n_true
        pooled = _statuses(gp.n_true, pooled_neg, pooled_neg, min_count)
        for name in CLASS_MEAN_GAPS:
            gap = entry["gaps"][name]
            if gap["status"] != OK:
                continue
            masks, _ = defined_classes(name, pooled)
            sources, _ = GAPS[name]
            used = [statuses[m][:, mask, c] for c, mask in enumerate(masks) if mask is not None for m in sources]
            status = worst_per_fold(used)
            gap["folds"] = spread_of(class_mean_values(name, masks, arrays), status, labels)
        fold_n = status_of(np.rint(arrays["n"]), min_count)
        for name in GROUP_GAPS:
            gap = entry["gaps"][name]
            if gap["status"] != OK:
                continue
            used_groups = np.isin(np.array(gp.grouping.labels, dtype=object), gap["groups_used"])
            status = worst_per_fold([fold_n[:, used_groups]])
            gap["folds"] = spread_of(gap_values(name, arrays, used_groups, GROUP_GAPS), status, labels)
