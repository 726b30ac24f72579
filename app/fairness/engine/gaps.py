"""Gaps over the groups of one grouping, computed over ``ok`` groups only.

Every gap is a function of per-group arrays of shape ``(b, n_groups)`` and returns ``(b,)``, so the
same code gives the point estimate (b = 1) and every bootstrap resample.

Definitions (``docs/metrics.md``):
- ``pfd`` max − min PF; ``auc_gap`` max − min within-group AUC; ``worst_group_auc`` min AUC;
- ``eopp1`` max − min TPR; ``eopp0`` max − min TNR;
- ``eodd``: the paper's |ΔTPR + ΔFPR| / 2 for two groups. Generalised to k groups as the maximum over
  pairs, which equals (max_g(TPR+FPR) − min_g(TPR+FPR)) / 2 and reduces to the paper's for k = 2;
- Fairlearn's ``demographic_parity_difference/ratio`` (between groups), ``equalized_odds_difference``
  (worst case: the larger of the TPR and FPR differences) and ``_ratio`` (the smaller of the TPR and
  FPR ratios), ``equal_opportunity_difference/ratio`` (TPR). A ratio whose largest rate is 0 is
  undefined (0/0), not 0.
A group enters a gap only when every metric the gap uses is ``ok`` for it (both TPR and FPR for the
equalized-odds family); the gap names the groups it left out and why.

A max − min gap's bootstrap distribution sits above the true gap when the groups are alike (the
largest of several noisy values is biased upwards), so its interval is ``intervals.centred`` (on the
estimate), not the percentile interval; the evidence that some group differs is the gap's
Holm-adjusted group-vs-rest p-value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED

Arrays = dict[str, np.ndarray]

GAP_RANGE = (0.0, 1.0)  # every gap (differences of rates or AUCs, worst-group AUC, ratios) lies here


def spread(x: np.ndarray) -> np.ndarray:
    return x.max(axis=1) - x.min(axis=1)


def _ratio(x: np.ndarray) -> np.ndarray:
    high, low = x.max(axis=1), x.min(axis=1)
    out = np.full(high.shape, np.nan)
    np.divide(low, high, out=out, where=high > 0)
    return out


GapTable = dict[str, tuple[tuple[str, ...], Callable[[Arrays], np.ndarray]]]  # name -> (metrics used, gap)

GAPS: GapTable = {
    "pfd": (("pf",), lambda a: spread(a["pf"])),
    "auc_gap": (("auc",), lambda a: spread(a["auc"])),
    "worst_group_auc": (("auc",), lambda a: a["auc"].min(axis=1)),
    "eopp1": (("tpr",), lambda a: spread(a["tpr"])),
    "eopp0": (("tnr",), lambda a: spread(a["tnr"])),
    "eodd": (("tpr", "fpr"), lambda a: spread(a["tpr"] + a["fpr"]) / 2.0),
    "demographic_parity_difference": (("selection_rate",), lambda a: spread(a["selection_rate"])),
    "demographic_parity_ratio": (("selection_rate",), lambda a: _ratio(a["selection_rate"])),
    "equalized_odds_difference": (
        ("tpr", "fpr"),
        lambda a: np.maximum(spread(a["tpr"]), spread(a["fpr"])),
    ),
    "equalized_odds_ratio": (("tpr", "fpr"), lambda a: np.minimum(_ratio(a["tpr"]), _ratio(a["fpr"]))),
    "equal_opportunity_difference": (("tpr",), lambda a: spread(a["tpr"])),
    "equal_opportunity_ratio": (("tpr",), lambda a: _ratio(a["tpr"])),
}


def used_groups(name: str, statuses: dict[str, np.ndarray], table: GapTable = GAPS) -> np.ndarray:
    """Boolean mask of the groups that enter gap ``name`` of ``table`` (ok for every metric it uses)."""
    sources, _ = table[name]
    return np.all([statuses[m] == OK for m in sources], axis=0)


def gap_status(name: str, statuses: dict[str, np.ndarray], table: GapTable = GAPS) -> str:
    """ok with two or more usable groups; insufficient if only too-small groups made the difference."""
    sources, _ = table[name]
    usable = used_groups(name, statuses, table).sum()
    defined = np.all([statuses[m] != UNDEFINED for m in sources], axis=0).sum()
    if usable >= 2:
        return OK
    return INSUFFICIENT if defined >= 2 else UNDEFINED


def gap_values(name: str, arrays: Arrays, used: np.ndarray, table: GapTable = GAPS) -> np.ndarray:
    """``(b,)`` values of gap ``name`` of ``table`` over the ``used`` groups; NaN with fewer than two."""
    sources, fn = table[name]
    b = arrays[sources[0]].shape[0]
    if used.sum() < 2:
        return np.full(b, np.nan)
    return fn({m: arrays[m][:, used] for m in sources})
