"""Live monitoring of multiclass and multilabel models, from their outcome cells
(``app.serving.aggregates``): per class one-vs-rest, per finding as a binary task.

Multiclass: each group's confusion matrix gives, for every class ``c``, the one-vs-rest counts
(TP = M[c, c], FN = row c − TP, FP = column c − TP, TN = the rest) and so TPR_c, FPR_c, TNR_c … with
Wilson intervals and the report's statuses (``app.fairness.engine.live.group_metrics``); accuracy per
group is the matrix's trace over its total. AUC_c and PF_c need each class's scores, which an outcome
does not count (that would cost K cells per outcome): they come from an evaluation. The grouping's
gaps are the paper's multi-class ones (``docs/metrics.md``): Eopp0, Eopp1 and Eodd per class over the
``ok`` groups, then their mean over the classes where the gap is defined, naming the classes left out.

Multilabel: each finding's cells are a binary model's, so each finding gets exactly the binary live
groupings (``monitoring.live_groupings``), AUC and PF included, over the outcomes where its truth is known.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.fairness.engine.intervals import wilson
from app.fairness.engine.live import GroupCounts, gaps, group_metrics
from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED, status_of
from app.serving.aggregates import MATRIX, N_SCORE_BINS, OUTCOME, OVERALL

CLASS_RATES = ("prevalence", "tpr", "fpr", "tnr", "fnr", "ppv", "npv", "selection_rate")
CLASS_GAPS = ("eopp0", "eopp1", "eodd")


@dataclass
class ClassCounts:
    """One group's outcome cells of a multiclass or multilabel model."""

    n: int = 0  # outcomes
    matrix: Counter[tuple[int, int]] = field(default_factory=Counter)  # (true, predicted) class index
    findings: dict[int, GroupCounts] = field(default_factory=dict)  # multilabel: per finding

    def add(self, cell: str, count: int) -> None:
        if cell == OUTCOME:
            self.n += count
        elif cell.startswith(MATRIX):
            true, predicted = cell.removeprefix(MATRIX).split(":")
            self.matrix[int(true), int(predicted)] += count
        else:  # c<f>:<binary cell>
            head, _, rest = cell.partition(":")
            self.findings.setdefault(int(head[1:]), GroupCounts(N_SCORE_BINS)).add(rest, count)

    def one_vs_rest(self, n_classes: int) -> list[GroupCounts]:
        """Each class against the rest, as a binary group's confusion counts (no score histograms)."""
        matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
        for (true, predicted), n in self.matrix.items():
            matrix[true, predicted] += n
        tp = np.diag(matrix)
        fn, fp = matrix.sum(axis=1) - tp, matrix.sum(axis=0) - tp
        out = []
        for c in range(n_classes):
            counts = GroupCounts(N_SCORE_BINS)
            counts.confusion = {
                "tp": int(tp[c]),
                "fn": int(fn[c]),
                "fp": int(fp[c]),
                "tn": int(self.n - tp[c] - fn[c] - fp[c]),
            }
            out.append(counts)
        return out

    def correct(self) -> int:
        return sum(n for (true, predicted), n in self.matrix.items() if true == predicted)


Groups = dict[tuple[str, str], ClassCounts]


def _rate(x: int, m: int, min_count: int, confidence: float) -> dict[str, Any]:
    low, high = wilson(np.array([x]), np.array([m]), confidence)
    status = str(status_of(np.array([m]), min_count)[0])
    defined = status != UNDEFINED
    return {
        "value": x / m if defined else None,
        "ci_low": float(low[0]) if defined else None,
        "ci_high": float(high[0]) if defined else None,
        "status": status,
        "n": m,
    }


def _groupings(counts: Groups) -> list[tuple[str, dict[str, ClassCounts], int]]:
    """(attribute, its groups' counts, outcomes with no value of it), ``overall`` first."""
    overall = counts.get((OVERALL, "all"), ClassCounts()).n
    out = []
    for attribute in [OVERALL, *sorted({a for a, _ in counts if a != OVERALL})]:
        members = {g: c for (a, g), c in sorted(counts.items()) if a == attribute}
        out.append((attribute, members, overall - sum(c.n for c in members.values())))
    return out


def multiclass_groupings(counts: Groups, classes: list[str], min_count: int, confidence: float) -> list[dict[str, Any]]:
    """Per grouping: each group's accuracy and one-vs-rest rates per class, and the multi-class gaps."""
    out = []
    for attribute, members, n_missing in _groupings(counts):
        rest = {g: c.one_vs_rest(len(classes)) for g, c in members.items()}
        empty = np.zeros(N_SCORE_BINS, dtype=np.int64)
        per_class = {  # class -> group -> its one-vs-rest metrics (auc and pf undefined: no scores)
            name: {g: group_metrics(rest[g][k], empty, min_count, confidence) for g in members}
            for k, name in enumerate(classes)
        }
        groups = [
            {
                "group": g,
                "n": c.n,
                "metrics": {"accuracy": _rate(c.correct(), c.n, min_count, confidence)},
                "classes": {
                    name: {
                        "n_pos": rest[g][k].c("tp", "fn"),
                        "n_neg": rest[g][k].c("fp", "tn"),
                        "metrics": {m: per_class[name][g][m] for m in CLASS_RATES},
                    }
                    for k, name in enumerate(classes)
                },
            }
            for g, c in members.items()
        ]
        grouping: dict[str, Any] = {
            "attribute": attribute,
            "kind": "overall" if attribute == OVERALL else "attribute",
            "n_missing": n_missing,
            "groups": groups,
        }
        if attribute != OVERALL:
            class_gaps = {name: _class_gaps(rates) for name, rates in per_class.items()}
            grouping["gaps"] = {name: _mean_over_classes(name, class_gaps) for name in CLASS_GAPS}
            grouping["class_gaps"] = class_gaps
        out.append(grouping)
    return out


def _class_gaps(rates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: gap for name, gap in gaps(rates).items() if name in CLASS_GAPS}


def _mean_over_classes(name: str, class_gaps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The paper's multi-class gap: the mean over the classes whose gap is ``ok``."""
    used = [c for c, g in class_gaps.items() if g[name]["status"] == OK]
    statuses = {g[name]["status"] for g in class_gaps.values()}
    return {
        "value": float(np.mean([class_gaps[c][name]["value"] for c in used])) if used else None,
        "status": OK if used else INSUFFICIENT if INSUFFICIENT in statuses else UNDEFINED,
        "classes_used": used,
        "classes_left_out": [c for c in class_gaps if c not in used],
    }


def finding_counts(counts: Groups, f: int) -> dict[tuple[str, str], GroupCounts]:
    """Finding ``f``'s binary counts per group (groups where its truth was never known are left out)."""
    return {key: c.findings[f] for key, c in counts.items() if f in c.findings}
