"""Gaps of a multi-class evaluation over the groups of one grouping.

- Class-averaged (``eopp0``, ``eopp1``, ``eodd``; docs/metrics.md): per class c, the binary gap of
  ``gaps.GAPS`` over the groups ok for c (two groups: |difference|; more: max − min; Eodd:
  (max − min of TPR_c + FPR_c) / 2), then the mean over the classes where it is defined (two or
  more ok groups). ``paper_value``: the fair multi-exit paper's code, where an empty denominator
  gives a rate of 0 and every group and class enters.
- Per class (``per_class_gaps``): eopp0, eopp1, eodd, pfd and auc_gap of class c alone.
- Group metrics: max − min over the ok groups of accuracy, balanced accuracy and macro
  precision/recall/F1 (the paper's "Diff").
Intervals: ``intervals.centred`` on the resamples of the same statistic. No group-vs-rest tests are
run for multi-class gaps (``p_value`` null); the verdict rests on the intervals.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.evaluate import gap_entry, num
from app.fairness.engine.gaps import GAP_RANGE, GAPS, GapTable, gap_status, gap_values, spread, used_groups
from app.fairness.engine.intervals import centred
from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED, worst

Arrays = dict[str, np.ndarray]

CLASS_MEAN_GAPS = ("eopp0", "eopp1", "eodd")
PER_CLASS_GAPS = ("eopp0", "eopp1", "eodd", "pfd", "auc_gap")
GROUP_GAPS: GapTable = {
    "accuracy_gap": (("accuracy",), lambda a: spread(a["accuracy"])),
    "balanced_accuracy_gap": (("balanced_accuracy",), lambda a: spread(a["balanced_accuracy"])),
    "macro_precision_diff": (("macro_precision",), lambda a: spread(a["macro_precision"])),
    "macro_recall_diff": (("macro_recall",), lambda a: spread(a["macro_recall"])),
    "macro_f1_diff": (("macro_f1",), lambda a: spread(a["macro_f1"])),
}


def _class_slice(arrays: Arrays, c: int, metrics: tuple[str, ...]) -> Arrays:
    """Class c's ``(b, n_groups)`` arrays of ``metrics`` from ``(b, n_groups, K)`` arrays."""
    return {m: arrays[m][..., c] for m in metrics}


def paper_rates(point: Arrays) -> Arrays:
    """``(1, n_groups, K)`` TPR, FPR and TNR with 0 for an empty denominator (the paper's code)."""
    tp, n_true, n_pred = point["tp"], point["n_true"], point["n_pred"]
    n_neg = n_true.sum(axis=2, keepdims=True) - n_true
    fp = n_pred - tp

    def rate(x: np.ndarray, n: np.ndarray) -> np.ndarray:
        out = np.zeros(x.shape)
        np.divide(x, n, out=out, where=n > 0)
        return out

    return {"tpr": rate(tp, n_true), "fpr": rate(fp, n_neg), "tnr": rate(n_neg - fp, n_neg)}


def _left_out_reason(labels: tuple[str, ...], left: np.ndarray, used: np.ndarray) -> str:
    detail = ", ".join(f"{labels[g]} {left[g]}" for g in np.flatnonzero(~used))
    return f"{int(used.sum())} of {len(labels)} groups ok (2 needed)" + (f"; {detail}" if detail else "")


def defined_classes(name: str, statuses: dict[str, np.ndarray]) -> tuple[list[np.ndarray | None], list[str]]:
    """Per class, the mask of groups its gap ``name`` uses (None where the gap is not defined for
    the class: fewer than two ok groups), and each class's gap status."""
    sources, _ = GAPS[name]
    masks: list[np.ndarray | None] = []
    class_statuses = []
    for c in range(statuses[sources[0]].shape[1]):
        st = {m: statuses[m][:, c] for m in sources}
        status = gap_status(name, st)
        class_statuses.append(status)
        masks.append(used_groups(name, st) if status == OK else None)
    return masks, class_statuses


def class_mean_values(name: str, masks: list[np.ndarray | None], arrays: Arrays) -> np.ndarray:
    """``(b,)`` mean over the defined classes of class c's gap ``name`` over its used groups; NaN
    when no class is defined."""
    sources, _ = GAPS[name]
    values = [
        gap_values(name, _class_slice(arrays, c, sources), used) for c, used in enumerate(masks) if used is not None
    ]
    if not values:
        return np.full(arrays[sources[0]].shape[0], np.nan)
    return np.mean(values, axis=0)


def class_mean_gap(
    name: str,
    classes: tuple[str, ...],
    labels: tuple[str, ...],
    statuses: dict[str, np.ndarray],
    point: Arrays,
    boot: Arrays | None,
    confidence: float,
) -> dict:
    """The class-averaged gap ``name`` (``statuses``: metric -> ``(n_groups, K)``)."""
    sources, fn = GAPS[name]
    masks, class_statuses = defined_classes(name, statuses)
    left_out = []
    for c, used in enumerate(masks):
        if used is None:
            st = [statuses[m][:, c] for m in sources]
            reason = _left_out_reason(labels, worst(*st), used_groups(name, {m: statuses[m][:, c] for m in sources}))
            left_out.append({"class_name": classes[c], "reason": f"{class_statuses[c]}: {reason}"})
    paper_value = None
    if len(labels) >= 2:
        paper = paper_rates(point)
        paper_value = num(np.mean([fn(_class_slice(paper, c, sources))[0] for c in range(len(classes))]))
    value = low = high = None
    if any(used is not None for used in masks):
        status = OK
        estimate = float(class_mean_values(name, masks, point)[0])
        value = num(estimate)
        if boot is not None and len(boot[sources[0]]):
            samples = class_mean_values(name, masks, boot)
            lo, hi = centred(samples[:, None], np.array([estimate]), confidence, GAP_RANGE)
            low, high = num(lo[0]), num(hi[0])
    else:
        status = INSUFFICIENT if INSUFFICIENT in class_statuses else UNDEFINED
    return {
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "status": status,
        "classes_used": [classes[c] for c, used in enumerate(masks) if used is not None],
        "classes_left_out": left_out,
        "paper_value": paper_value,
    }


def per_class_gaps(
    classes: tuple[str, ...],
    labels: tuple[str, ...],
    statuses: dict[str, np.ndarray],
    point: Arrays,
    boot: Arrays | None,
    confidence: float,
) -> dict[str, dict]:
    """Class -> its one-vs-rest gaps (binary ``Gap`` entries without tests)."""
    metrics = ("tpr", "fpr", "tnr", "auc", "pf")
    out = {}
    for c, class_name in enumerate(classes):
        st = {m: statuses[m][:, c] for m in metrics}
        pt = _class_slice(point, c, metrics)
        bt = None if boot is None else _class_slice(boot, c, metrics)
        out[class_name] = {name: gap_entry(name, labels, st, pt, bt, confidence) for name in PER_CLASS_GAPS}
    return out


def group_gap_entries(
    labels: tuple[str, ...],
    statuses: dict[str, np.ndarray],
    point: Arrays,
    boot: Arrays | None,
    confidence: float,
) -> dict[str, dict]:
    """max − min over the ok groups of each group metric (``GROUP_GAPS``)."""
    return {name: gap_entry(name, labels, statuses, point, boot, confidence, table=GROUP_GAPS) for name in GROUP_GAPS}
