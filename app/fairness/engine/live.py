"""Subgroup metrics and drift from counts alone: what live monitoring computes from its aggregates
(confusion counts at the operating threshold and binned score histograms per class), with no
per-sample data and no bootstrap, so its cost does not grow with the number of predictions.

Conventions (docs/monitoring.md):

* Rates (tpr, fpr, tnr, fnr, ppv, npv, accuracy, selection_rate, prevalence): exact from the
  counts, Wilson intervals, the same statuses as a report (undefined: empty denominator;
  insufficient: below ``min_count``).
* ``auc`` (within group) and ``pf`` (the group's positives against all negatives): the
  Mann–Whitney statistic on the binned scores, pairs in one bin counting ½ (so scores closer than
  one bin width count as ties; with 100 bins the difference from the exact value is at most the
  share of pairs within one bin, usually well under 0.01). Intervals: Hanley & McNeil (1982), the
  normal approximation from the AUC and the two class sizes.
* Gaps: the report's own definitions (``gaps.GAPS``) over the ``ok`` groups, as point values (no
  interval, no p-value: the report's come from a bootstrap, which counts cannot give).
* Drift: PSI over ten bins of width 0.1 (each count + 0.5, so an empty bin is finite) and the
  Kolmogorov–Smirnov distance between the binned distributions (resolution one bin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.fairness.engine.gaps import GAPS
from app.fairness.engine.intervals import wilson, z_value
from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED

PSI_BINS = 10
RATES = {  # metric: (numerator cells, denominator cells)
    "prevalence": (("tp", "fn"), ("tp", "fn", "fp", "tn")),
    "tpr": (("tp",), ("tp", "fn")),
    "fpr": (("fp",), ("fp", "tn")),
    "tnr": (("tn",), ("fp", "tn")),
    "fnr": (("fn",), ("tp", "fn")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
    "accuracy": (("tp", "tn"), ("tp", "fn", "fp", "tn")),
    "selection_rate": (("tp", "fp"), ("tp", "fn", "fp", "tn")),
}


@dataclass
class GroupCounts:
    """One group's live counts; histograms have one entry per score bin."""

    n_bins: int
    n: int = 0  # predictions
    confusion: dict[str, int] = field(default_factory=dict)  # tp, fp, tn, fn
    exits: dict[int, int] = field(default_factory=dict)
    score: np.ndarray = field(init=False)  # every prediction
    pos: np.ndarray = field(init=False)
    neg: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.score, self.pos, self.neg = (np.zeros(self.n_bins, dtype=np.int64) for _ in range(3))

    def add(self, cell: str, count: int) -> None:
        """Add a stored cell (``n``, ``exit:k``, ``score:b``, ``pos:b``, ``neg:b``, ``tp``…)."""
        kind, _, index = cell.partition(":")
        if kind == "n":
            self.n += count
        elif kind == "exit":
            self.exits[int(index)] = self.exits.get(int(index), 0) + count
        elif kind in ("score", "pos", "neg"):
            getattr(self, kind)[int(index)] += count
        else:
            self.confusion[kind] = self.confusion.get(kind, 0) + count

    def c(self, *cells: str) -> int:
        return sum(self.confusion.get(cell, 0) for cell in cells)

    @property
    def n_outcomes(self) -> int:
        return self.c("tp", "fp", "tn", "fn")


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), pairs in one bin counting ½; NaN without both."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    return float((pos * (below + neg / 2.0)).sum() / (n_pos * n_neg))


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, confidence: float) -> tuple[float, float]:
    """Normal-approximation interval of an AUC (Hanley & McNeil 1982), clipped to [0, 1]."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    half = z_value(confidence) * float(np.sqrt(max(var, 0.0)))
    return max(auc - half, 0.0), min(auc + half, 1.0)


def _status(denominator: int, min_count: int) -> str:
    return UNDEFINED if denominator == 0 else INSUFFICIENT if denominator < min_count else OK


def _value(value: float, low: float, high: float, status: str, n: int) -> dict[str, Any]:
    defined = status != UNDEFINED and not np.isnan(value)
    return {
        "value": float(value) if defined else None,
        "ci_low": float(low) if defined else None,
        "ci_high": float(high) if defined else None,
        "status": status if defined else UNDEFINED,
        "n": int(n),
    }


def group_metrics(g: GroupCounts, all_neg: np.ndarray, min_count: int, confidence: float) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name, (num, den) in RATES.items():
        x, m = g.c(*num), g.c(*den)
        lows, highs = wilson(np.array([x]), np.array([m]), confidence)
        metrics[name] = _value(x / m if m else np.nan, float(lows[0]), float(highs[0]), _status(m, min_count), m)
    n_pos = int(g.pos.sum())
    for name, negatives in (("auc", g.neg), ("pf", all_neg)):
        n_neg = int(negatives.sum())
        value = histogram_auc(g.pos, negatives)
        low, high = hanley_mcneil(value, n_pos, n_neg, confidence) if not np.isnan(value) else (np.nan, np.nan)
        metrics[name] = _value(value, low, high, _status(min(n_pos, n_neg), min_count), min(n_pos, n_neg))
    return metrics


def gaps(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The report's gaps over the ``ok`` groups of one grouping, as point values."""
    out = {}
    for name, (uses, formula) in GAPS.items():
        used = [g for g, m in groups.items() if all(m[u]["status"] == OK for u in uses)]
        left_out = [
            {"group": g, "status": next(m[u]["status"] for u in uses if m[u]["status"] != OK)}
            for g, m in groups.items()
            if g not in used
        ]
        enough = len(used) >= (1 if name == "worst_group_auc" else 2)
        value = float("nan")
        if enough:
            arrays = {u: np.array([[groups[g][u]["value"] for g in used]], dtype=np.float64) for u in uses}
            value = float(formula(arrays)[0])
        status = OK if enough and not np.isnan(value) else (INSUFFICIENT if groups else UNDEFINED)
        out[name] = {
            "value": value if status == OK else None,
            "ci_low": None,
            "ci_high": None,
            "status": status,
            "p_value": None,
            "groups_used": used,
            "left_out": left_out,
        }
    return out


def coarsen(hist: np.ndarray, n_bins: int = PSI_BINS) -> np.ndarray:
    return np.asarray(hist, dtype=np.float64).reshape(n_bins, -1).sum(axis=1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of ``actual`` against ``expected`` (fine histograms, coarsened)."""
    e, a = coarsen(expected) + 0.5, coarsen(actual) + 0.5
    e, a = e / e.sum(), a / a.sum()
    return float(((a - e) * np.log(a / e)).sum())


def ks(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest distance between the two binned cumulative distributions; NaN when either is empty."""
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    return float(np.abs(np.cumsum(e) / e.sum() - np.cumsum(a) / a.sum()).max())
