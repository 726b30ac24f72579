"""What model selection measures for each task, on the validation split (docs/metrics.md definitions).

Binary: AUC and PFD of the served scores (``app.fairness.engine.ranking``, the report's own rank sums).
Multiclass: macro one-vs-rest AUC, mean one-vs-rest PFD, accuracy, macro F1 over the classes present
in ``y`` and the multi-class Eopp1 over the training groups (per class max − min TPR_c over the groups
with positives of c, then the mean over the classes where that gap is defined). Multilabel: per-finding
AUC and PFD on the samples whose label is known, averaged over the findings where they are defined.
Undefined values are NaN (a split too small for them), never 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.ranking import auc, pfd, positive_fractions
from app.modelpkg.task import Task, multiclass_decision


@dataclass(frozen=True)
class ExitScores:
    """One output's validation metrics; ``auc``/``pfd`` are per task as in the module docstring."""

    auc: float
    pfd: float
    accuracy: float | None = None  # multiclass only
    macro_f1: float | None = None
    eopp1: float | None = None


def _nanmean(values: list[float]) -> float:
    defined = [v for v in values if np.isfinite(v)]
    return float(np.mean(defined)) if defined else float("nan")


def group_positive_fractions(
    task: Task, y: np.ndarray, probs: np.ndarray, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """``(n_groups,)`` PF per group: the binary PF, or its mean over the classes/findings where defined."""
    if task.kind == "binary":
        return positive_fractions(y, probs, codes, n_groups)
    per_output = np.stack([_output_pf(task, y, probs, codes, n_groups, j) for j in range(task.width)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group without positives anywhere stays NaN
        return np.nanmean(per_output, axis=0)


def _output_pf(task: Task, y: np.ndarray, probs: np.ndarray, codes: np.ndarray, n_groups: int, j: int) -> np.ndarray:
    if task.kind == "multiclass":
        return positive_fractions((y == j).astype(np.int64), probs[:, j], codes, n_groups)
    known = y[:, j] >= 0
    return positive_fractions(y[known, j].astype(np.int64), probs[known, j], codes[known], n_groups)


def _output_auc(task: Task, y: np.ndarray, probs: np.ndarray, j: int) -> float:
    if task.kind == "multiclass":
        return auc((y == j).astype(np.int64), probs[:, j])
    known = y[:, j] >= 0
    return auc(y[known, j].astype(np.int64), probs[known, j])


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """sklearn's ``f1_score(average="macro", labels=<classes present in y>, zero_division=0)``."""
    tp = np.bincount(y[pred == y], minlength=k).astype(np.float64)
    support = np.bincount(y, minlength=k)
    predicted = np.bincount(pred, minlength=k)
    present = support > 0
    if not present.any():
        return float("nan")
    denominator = (support + predicted)[present]
    f1 = np.divide(2 * tp[present], denominator, out=np.zeros(int(present.sum())), where=denominator > 0)
    return float(f1.mean())


def multiclass_eopp1(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, k: int) -> float:
    """Mean over classes of max − min TPR_c across the groups with positives of class c (NaN if none)."""
    grouped = codes >= 0
    cell = codes[grouped] * k + y[grouped]
    hits = np.bincount(cell[pred[grouped] == y[grouped]], minlength=n_groups * k).reshape(n_groups, k)
    support = np.bincount(cell, minlength=n_groups * k).reshape(n_groups, k)
    gaps = []
    for c in range(k):
        held = support[:, c] > 0
        if held.sum() >= 2:
            tpr = hits[held, c] / support[held, c]
            gaps.append(float(tpr.max() - tpr.min()))
    return float(np.mean(gaps)) if gaps else float("nan")


def score_exit(
    task: Task,
    y: np.ndarray,
    probs: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    class_thresholds: np.ndarray | None = None,
) -> ExitScores:
    """The metrics of one output (an exit's, or the served one) on labelled samples ``y``."""
    if task.kind == "binary":
        return ExitScores(auc=auc(y, probs), pfd=pfd(positive_fractions(y, probs, codes, n_groups)))
    aucs = [_output_auc(task, y, probs, j) for j in range(task.width)]
    pfds = [pfd(_output_pf(task, y, probs, codes, n_groups, j)) for j in range(task.width)]
    if task.kind == "multilabel":
        return ExitScores(auc=_nanmean(aucs), pfd=_nanmean(pfds))
    pred = multiclass_decision(probs, class_thresholds)
    y = y.astype(np.int64)
    return ExitScores(
        auc=_nanmean(aucs),
        pfd=_nanmean(pfds),
        accuracy=float((pred == y).mean()) if len(y) else float("nan"),
        macro_f1=macro_f1(y, pred, task.width),
        eopp1=multiclass_eopp1(y, pred, codes, n_groups, task.width),
    )
