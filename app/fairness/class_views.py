"""What the multi-class page draws (``templates/multiclass.html``), and how it stays readable with many
classes: classes in order of support, the first few shown and the rest folded away, and a confusion
matrix that pools the rarest classes into one "other" row and column. Fitzpatrick 17k's 114
conditions drawn in full would be a 114 × 114 table per group; its most frequent classes and one
pooled remainder keep every sample counted and the page scannable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TOP_CLASSES = 12  # classes shown expanded; the rest are one click away (a <details>)
OTHER = "other"
HEAT = (27, 108, 168)  # the palette's first blue: a cell's colour at 100 % of its row

GROUP_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")
DIFF_GAPS = {  # the paper's "Diff" row of each group metric
    "accuracy": "accuracy_gap",
    "balanced_accuracy": "balanced_accuracy_gap",
    "macro_precision": "macro_precision_diff",
    "macro_recall": "macro_recall_diff",
    "macro_f1": "macro_f1_diff",
}
CLASS_GAPS = ["eopp0", "eopp1", "eodd"]
CLASS_RATES = ("tpr", "fpr", "auc", "pf")
PER_CLASS_GAPS = ("eopp0", "eopp1", "eodd", "pfd", "auc_gap")


def by_support(classes: Sequence[str], counts: Mapping[str, int]) -> list[int]:
    """Class indices, most samples first; equal counts keep the report's class order."""
    return sorted(range(len(classes)), key=lambda c: -counts.get(classes[c], 0))


def heat(share: float) -> str:
    """Inline style of a heat-map cell: white at 0, the palette's blue at 1, with readable text."""
    r, g, b = (round(255 + (c - 255) * share) for c in HEAT)
    return f"background:#{r:02x}{g:02x}{b:02x};color:{'#fff' if share > 0.55 else '#222'}"


def confusion_view(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], order: Sequence[int], top: int = TOP_CLASSES
) -> dict[str, Any]:
    """A group's confusion matrix for a heat map: rows are true classes, columns predicted ones, in
    ``order``; beyond the first ``top`` classes every class is pooled into "other" (rows and columns),
    so each row still sums to the group's samples of that true class. A cell's shade is its share of
    its row (the recall of the diagonal), its text the count."""
    shown = list(order[:top])
    pooled = len(order) > top
    bucket = np.full(len(classes), len(shown), dtype=np.int64)
    bucket[shown] = np.arange(len(shown))
    size = len(shown) + pooled
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (bucket[:, None], bucket[None, :]), np.asarray(confusion, dtype=np.int64))
    labels = [str(classes[c]) for c in shown] + ([OTHER] if pooled else [])
    rows = []
    for i, counts in enumerate(matrix):
        total = int(counts.sum())
        cells = [
            {
                "count": int(count),
                "style": heat(count / total if total else 0.0),
                "tip": f"true {labels[i]} → predicted {labels[j]}: {count}"
                + (f" ({count / total:.0%} of true {labels[i]})" if total else ""),
            }
            for j, count in enumerate(counts)
        ]
        rows.append({"label": labels[i], "total": total, "cells": cells})
    return {"labels": labels, "rows": rows, "pooled": len(order) - len(shown)}


def multiclass_context(report: Mapping[str, Any], max_groups: int) -> dict[str, Any]:
    """What ``multiclass.html`` draws besides the summary and exits: classes in order of support; per
    class its one-vs-rest rows and gaps; per group a confusion matrix (the most frequent classes and
    "other"), a grouping's matrices folded when it has more than ``max_groups`` groups."""
    names, thresholds = report["classes"], report["config"]["class_thresholds"]
    support = report["population"]["class_counts"]
    order = by_support(names, support)
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    groupings = policy["groupings"]
    classes = [
        {"name": names[c], "support": support[names[c]], "threshold": thresholds[c] if thresholds else None}
        for c in order
    ]
    per_class = [
        {
            **c,
            "rows": [(entry["attribute"], g) for entry in groupings for g in entry["groups"]],
            "gaps": [(e["attribute"], e["per_class_gaps"][c["name"]]) for e in groupings if "per_class_gaps" in e],
        }
        for c in classes
    ]
    confusions = [
        {
            "attribute": entry["attribute"],
            "folded": len(entry["groups"]) > max_groups,
            "matrices": [(g, confusion_view(g["confusion"], names, order)) for g in entry["groups"]],
        }
        for entry in groupings
    ]
    return {
        "classes": classes,
        "thresholds": thresholds is not None,
        "decision": report["config"]["decision"],
        "per_class": per_class,
        "pooled": max(len(names) - TOP_CLASSES, 0),
        "confusions": confusions,
        "groupings": groupings,
        "top": TOP_CLASSES,
        "group_metrics": list(GROUP_METRICS),
        "diff_gaps": DIFF_GAPS,
        "class_gaps": CLASS_GAPS,
        "class_rates": list(CLASS_RATES),
        "per_class_gaps": list(PER_CLASS_GAPS),
    }
