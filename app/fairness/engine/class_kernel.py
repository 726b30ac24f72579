"""Per-group, per-class statistics of one K-class prediction for a block of resample weights.

The multi-class counterpart of ``kernel``: the same code gives point estimates (weights all 1),
bootstrap resamples (multinomial counts) and per-fold values (0/1 fold masks).

Counts come from segments: samples grouped by (finest cell, true class, predicted class). One
weighted sum per segment per resample, then per grouping three sums of segments give every group's
true-positive, true-class and predicted-class counts of every class at once, and from them the
one-vs-rest rates and the macro metrics. The K × K confusion matrix is only needed for the point
estimate and is counted directly (``confusion``).

AUC and PF of class c (c's samples the positives, its probability the score) are the binary
kernel's weighted Mann–Whitney sums (``kernel.RankPass``), one pass per class for PF (each cell's
c-positives against every non-c sample) and one per class and grouping for the within-group AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.bootstrap import map_blocks, row_chunks
from app.fairness.engine.groups import Design, Grouping
from app.fairness.engine.kernel import Aggregator, RankPass, WeightBlock, segment_sums
from app.fairness.engine.resample import Clusters

ClassArrays = dict[str, np.ndarray]  # metric -> (b, n_groups, K) or (b, n_groups)

CLASS_METRICS = ("tpr", "fpr", "tnr", "ppv", "f1", "auc", "pf")
GROUP_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")


@dataclass(frozen=True)
class ClassGroupingPlan:
    """One grouping's sums: segments to (group, class) counts, cells to groups, and per class the
    within-group rank pass (None for the overall grouping, whose AUC is its PF)."""

    grouping: Grouping
    tp: Aggregator  # segments -> group × class where true == predicted == class
    true: Aggregator  # segments -> group × true class
    pred: Aggregator  # segments -> group × predicted class
    cells: Aggregator  # cells -> groups
    within: tuple[RankPass, ...] | None  # per class
    n_true: np.ndarray  # (n_groups, K) data counts


@dataclass(frozen=True)
class ClassPlan:
    """Everything fixed about one K-class prediction (probabilities and decisions) in internal order."""

    n_classes: int
    segments: Aggregator  # samples -> (cell, true, predicted) segments
    pf: tuple[RankPass, ...]  # per class: each cell's positives against all negatives
    groupings: tuple[ClassGroupingPlan, ...]


def plan_classes(probs: np.ndarray, y: np.ndarray, pred: np.ndarray, design: Design) -> ClassPlan:
    """Plan ``(n, K)`` probabilities with labels ``y`` and decisions ``pred`` (internal order)."""
    n, k = probs.shape
    key = (design.cell * k + y) * k + pred
    seg_keys, seg_of_sample = np.unique(key, return_inverse=True)
    seg_pred, seg_true, seg_cell = seg_keys % k, (seg_keys // k) % k, seg_keys // (k * k)
    seg_correct = seg_true == seg_pred

    orders, ranks = [], []
    for c in range(k):
        order = np.argsort(probs[:, c], kind="stable")
        s = probs[order, c]
        orders.append(order)
        ranks.append(np.concatenate([[0], np.cumsum(s[1:] != s[:-1])]).astype(np.int64))
    positives = [(y == c)[orders[c]] for c in range(k)]
    everyone = np.zeros(n, dtype=np.int64)
    one_group = np.zeros(design.n_cells, dtype=np.int64)
    pf = tuple(
        RankPass.build(orders[c], ranks[c], positives[c], everyone, design.cell[orders[c]], design.n_cells, one_group)
        for c in range(k)
    )

    plans = []
    for g in design.groupings:
        n_groups = g.n_groups
        seg_group = design.cell_to_group(g)[seg_cell]
        within = None
        if g.kind != "overall":
            within = tuple(
                RankPass.build(
                    orders[c],
                    ranks[c],
                    positives[c],
                    g.codes[orders[c]],
                    g.codes[orders[c]],
                    n_groups,
                    np.arange(n_groups),
                )
                for c in range(k)
            )
        member = g.codes >= 0
        n_true = np.bincount(g.codes[member] * k + y[member], minlength=n_groups * k).reshape(n_groups, k)
        plans.append(
            ClassGroupingPlan(
                grouping=g,
                tp=Aggregator.build(
                    np.where(seg_correct & (seg_group >= 0), seg_group * k + seg_true, -1), n_groups * k
                ),
                true=Aggregator.build(np.where(seg_group >= 0, seg_group * k + seg_true, -1), n_groups * k),
                pred=Aggregator.build(np.where(seg_group >= 0, seg_group * k + seg_pred, -1), n_groups * k),
                cells=Aggregator.build(design.cell_to_group(g), n_groups),
                within=within,
                n_true=n_true,
            )
        )
    return ClassPlan(
        n_classes=k,
        segments=Aggregator.build(seg_of_sample.reshape(-1).astype(np.int64), len(seg_keys)),
        pf=pf,
        groupings=tuple(plans),
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (an empty denominator is undefined, never 0)."""
    den = np.broadcast_to(np.asarray(den, dtype=np.float64), num.shape)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def macro(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mean over the present classes (last axis) of ``values``; NaN where no class is present.

    sklearn's ``average="macro"`` with ``labels=`` the present classes: a present class whose value
    is NaN (precision of a class never predicted) counts as 0, as sklearn's ``zero_division`` does.
    """
    count = present.sum(axis=-1)
    total = np.where(present, np.nan_to_num(values, nan=0.0), 0.0).sum(axis=-1)
    return _ratio(total, count)


def class_block(
    plan: ClassPlan, weights: np.ndarray | WeightBlock, weighted_totals: bool = False
) -> dict[str, ClassArrays]:
    """``{attribute: {metric: array}}`` for a ``(b, n)`` uint8 block of weights (internal order), or
    that block as a ``WeightBlock`` shared with other plans (its 5·K rank passes share it anyway).

    Per group and class ``(b, n_groups, K)``: tp, n_true, n_pred and the metrics of
    ``CLASS_METRICS``; per group ``(b, n_groups)``: ``GROUP_METRICS`` and n. NaN marks an empty
    denominator. ``weighted_totals``: the rank sums' positive totals come from the weights (cluster
    resamples, fold masks) rather than the data's counts.
    """
    block = WeightBlock.of(weights)
    b, k = block.rows.shape[0], plan.n_classes
    seg = segment_sums(block.gather(plan.segments.take), plan.segments.bounds)  # exact integer counts
    twice_u_cells = [p.twice_u(block, weighted_totals) for p in plan.pf]  # per class (b, n_cells)
    overall_true = plan.groupings[0].true(seg).reshape(b, k)
    total_neg = overall_true.sum(axis=1, keepdims=True) - overall_true  # (b, K): every non-c sample
    out: dict[str, ClassArrays] = {}
    for gp in plan.groupings:
        g = gp.grouping.n_groups
        tp = gp.tp(seg).reshape(b, g, k)
        n_true = gp.true(seg).reshape(b, g, k)
        n_pred = gp.pred(seg).reshape(b, g, k)
        n = n_true.sum(axis=2)
        n_neg = n[:, :, None] - n_true
        twice_u_pf = np.stack([gp.cells(u) for u in twice_u_cells], axis=2)
        if gp.within is None:
            twice_u = twice_u_pf
        else:
            twice_u = np.stack([p.twice_u(block, weighted_totals) for p in gp.within], axis=2)
        fp = n_pred - tp
        fpr = _ratio(fp, n_neg)
        tpr = _ratio(tp, n_true)
        present = n_true > 0
        precision = _ratio(tp, n_pred)
        f1 = _ratio(2.0 * tp, n_true + n_pred)
        recall = macro(tpr, present)
        out[gp.grouping.attribute] = {
            "tp": tp,
            "n_true": n_true,
            "n_pred": n_pred,
            "n": n,
            "tpr": tpr,
            "fpr": fpr,
            "tnr": 1.0 - fpr,
            "ppv": precision,
            "f1": f1,
            "auc": _ratio(twice_u, 2.0 * n_true * n_neg),
            "pf": _ratio(twice_u_pf, 2.0 * n_true * total_neg[:, None, :]),
            "accuracy": _ratio(tp.sum(axis=2), n),
            "balanced_accuracy": recall,
            "macro_precision": macro(precision, present),
            "macro_recall": recall,
            "macro_f1": macro(f1, present),
        }
    return out


def point_classes(plan: ClassPlan) -> dict[str, ClassArrays]:
    """Point estimates: :func:`class_block` with every weight 1 (one row)."""
    n = int(plan.segments.bounds[-1])
    return class_block(plan, np.ones((1, n), dtype=np.uint8))


def confusion(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, k: int) -> np.ndarray:
    """``(n_groups, K, K)`` counts: row = true class, column = predicted class."""
    member = codes >= 0
    key = (codes[member] * k + y[member]) * k + pred[member]
    return np.bincount(key, minlength=n_groups * k * k).reshape(n_groups, k, k)


BOOT_CLASS_METRICS = ("tpr", "fpr", "tnr", "f1", "auc", "pf")  # what intervals and gaps need


def bootstrap_classes(
    design: Design,
    plans: Sequence[ClassPlan],
    n_boot: int,
    seed: int,
    clusters: Clusters | None = None,
) -> list[dict[str, ClassArrays]]:
    """Per plan: ``{attribute: {metric: (n_boot, ...)}}`` over the resamples ``bootstrap`` draws
    for the same design, seed and clusters (so several models' plans are paired). Stored as float32
    (1,000 resamples of 114 classes × 50 groups are 23 MB per metric): 1e-7 is far below the
    resampling noise the intervals describe."""
    store = [
        {
            gp.grouping.attribute: {
                **{
                    m: np.empty((n_boot, gp.grouping.n_groups, plan.n_classes), dtype=np.float32)
                    for m in BOOT_CLASS_METRICS
                },
                **{m: np.empty((n_boot, gp.grouping.n_groups), dtype=np.float32) for m in GROUP_METRICS},
            }
            for gp in plan.groupings
        }
        for plan in plans
    ]

    def work(weights: np.ndarray) -> list[tuple[int, list[dict[str, ClassArrays]]]]:
        return [
            (offset, [class_block(plan, block, weighted_totals=clusters is not None) for plan in plans])
            for offset, block in row_chunks(weights)
        ]

    for start, _size, chunks in map_blocks(design, n_boot, seed, None, clusters, work):
        for offset, per_plan in chunks:
            for target, result in zip(store, per_plan, strict=True):
                for attribute, arrays in target.items():
                    for metric, array in arrays.items():
                        values = result[attribute][metric]
                        array[start + offset : start + offset + len(values)] = values
    return store
