"""The ``fairlearn`` block: Fairlearn 0.15's own numbers, reproduced from counts.

Fairlearn puts 0.0 where a rate's denominator is empty (its confusion matrix is normalised with
``nan_to_num``), so its TPR and TNR of a group without positives or negatives are both 0.0; its
differences skip NaN groups; a between-groups ratio with a largest rate of 0 is 0/0 = NaN; a
to-overall ratio is inverted when above 1. ``equalized_odds_*`` take Python's ``max``/``min`` over
(TPR, FPR), whose NaN behaviour depends on order; that is copied too. "overall" is the population
Fairlearn would see: the samples with a group in this grouping.
"""

from __future__ import annotations

import numpy as np

RATES = ("selection_rate", "tpr", "fpr", "tnr", "fnr")


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def rates(tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> dict[str, np.ndarray]:
    """Fairlearn's selection rate, TPR, FPR, TNR, FNR from confusion counts."""
    return {
        "selection_rate": _rate(tp + fp, n_pos + n_neg),
        "tpr": _rate(tp, n_pos),
        "fpr": _rate(fp, n_neg),
        "tnr": _rate(n_neg - fp, n_neg),
        "fnr": _rate(n_pos - tp, n_pos),
    }


def _nan_max(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.max()) if len(x) else float("nan")


def _nan_min(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.min()) if len(x) else float("nan")


def _nan_mean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")


def _difference(by_group: np.ndarray, overall: float, method: str) -> float:
    if method == "between_groups":
        return _nan_max(np.abs(by_group - _nan_min(by_group)))
    return _nan_max(np.abs(by_group - overall))


def _ratio(by_group: np.ndarray, overall: float, method: str) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            return float(np.float64(_nan_min(by_group)) / np.float64(_nan_max(by_group)))
        ratios = by_group / overall
        ratios = np.where(ratios > 1, 1.0 / ratios, ratios)
    return _nan_min(ratios)


def _py_max(a: float, b: float) -> float:
    return b if b > a else a


def _py_min(a: float, b: float) -> float:
    return b if b < a else a


def fairlearn_block(tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> dict:
    """By-group and overall rates, and the difference/ratio table for both Fairlearn methods."""
    tp, fp, n_pos, n_neg = (np.asarray(a, dtype=np.float64) for a in (tp, fp, n_pos, n_neg))
    by_group = rates(tp, fp, n_pos, n_neg)
    overall = {k: float(v) for k, v in rates(tp.sum(), fp.sum(), n_pos.sum(), n_neg.sum()).items()}
    table: dict[str, dict[str, float]] = {}
    for method in ("between_groups", "to_overall"):
        diff = {m: _difference(by_group[m], overall[m], method) for m in ("selection_rate", "tpr", "fpr")}
        ratio = {m: _ratio(by_group[m], overall[m], method) for m in ("selection_rate", "tpr", "fpr")}
        table[method] = {
            "demographic_parity_difference": diff["selection_rate"],
            "demographic_parity_ratio": ratio["selection_rate"],
            "equalized_odds_difference": _py_max(diff["tpr"], diff["fpr"]),
            "equalized_odds_difference_mean": _nan_mean(np.array([diff["tpr"], diff["fpr"]])),
            "equalized_odds_ratio": _py_min(ratio["tpr"], ratio["fpr"]),
            "equalized_odds_ratio_mean": _nan_mean(np.array([ratio["tpr"], ratio["fpr"]])),
            "equal_opportunity_difference": diff["tpr"],
            "equal_opportunity_ratio": ratio["tpr"],
        }
    return {
        "by_group": {m: by_group[m] for m in RATES},
        "overall": overall,
        **table,
    }
