"""Plain verdicts on a paired comparison: per difference, and per config and attribute.

A difference is *distinguishable* when its interval excludes 0 and its Holm-adjusted p is below
``ALPHA``; it is then *better* or *worse* by the metric's direction (higher AUC is better, a lower
gap is better). Metrics without a direction (TPR and FPR alone trade off) get no verdict. When the
engine gives a verdict itself, that one is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import erfc, sqrt
from typing import Any

import numpy as np

ALPHA = 0.05
BETTER, WORSE, SAME = "better", "worse", "not distinguishable"
HIGHER_IS_BETTER = frozenset({"auc", "worst_group_auc"})
LOWER_IS_BETTER = frozenset(
    {
        "ece",
        "brier",
        "pfd",
        "auc_gap",
        "eopp1",
        "eopp0",
        "eodd",
        "demographic_parity_difference",
        "equalized_odds_difference",
        "mean_compute",
    }
)


def difference_verdict(row: Mapping[str, Any]) -> str | None:
    given = row.get("verdict")
    if given in (BETTER, WORSE, SAME):
        return str(given)
    metric = row["metric"]
    direction = 1 if metric in HIGHER_IS_BETTER else -1 if metric in LOWER_IS_BETTER else 0
    difference, low, high, p = row.get("difference"), row.get("ci_low"), row.get("ci_high"), row.get("p_holm")
    if direction == 0 or difference is None or low is None or high is None:
        return None
    if not (low > 0 or high < 0) or (p is not None and p >= ALPHA):
        return SAME
    return BETTER if difference * direction > 0 else WORSE


def attribute_verdicts(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Per attribute: better (some difference better, none worse), worse, mixed, or not distinguishable."""
    found: dict[str, set[str]] = {}
    for row in rows:
        verdict = row.get("verdict")
        if verdict is not None:
            found.setdefault(row["attribute"], set()).add(verdict)
    out = {}
    for attribute, verdicts in found.items():
        better, worse = BETTER in verdicts, WORSE in verdicts
        out[attribute] = "mixed" if better and worse else BETTER if better else WORSE if worse else SAME
    return out


def paired_mean_difference(
    model: np.ndarray, reference: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int, confidence: float = 0.95
) -> dict[str, Any]:
    """Mean of ``model − reference`` over paired samples, with a percentile interval from a bootstrap
    that resamples clusters (a patient's samples move together), and a Wald p-value."""
    diff = np.asarray(model, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    point = float(diff.mean())
    row: dict[str, Any] = {"difference": point, "ci_low": None, "ci_high": None, "p_value": None}
    if n_boot <= 0 or len(diff) == 0:
        return row
    _, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    sums, counts = np.bincount(inverse, weights=diff), np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2
    row["ci_low"], row["ci_high"] = (float(v) for v in np.quantile(means, [tail, 1 - tail]))
    se = float(means.std(ddof=1))
    if se > 0:
        row["p_value"] = erfc(abs(point / se) / sqrt(2))
    else:
        row["p_value"] = 1.0 if point == 0 else 0.0
    return row
