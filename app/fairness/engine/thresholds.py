"""Turning scores into decisions: the operating threshold and the early-exit policy.

Operating threshold: Youden's J = TPR − FPR maximised over the observed scores (ties: the higher
threshold), or the lowest threshold whose specificity reaches a target. Predictions are
``score >= threshold``. Training freezes one on its validation split (never on test); an uploaded
audit may choose one the same way (``app.fairness.service``).

Early exit: a sample leaves at the first exit whose confidence max(p, 1 − p) reaches that exit's θ
(``None``: that exit never decides), else the last exit decides. ``exit_index`` replays that policy
on every exit's scores; serving runs the same rule stage by stage (``app.modelpkg.onnx_chain``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def youden_threshold(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    last = np.r_[ss[1:] != ss[:-1], True]  # last row of each distinct score: "predict s >= score"
    tpr = np.cumsum(ys == 1)[last] / max(int((y == 1).sum()), 1)
    fpr = np.cumsum(ys == 0)[last] / max(int((y == 0).sum()), 1)
    return float(ss[last][int(np.argmax(tpr - fpr))])  # first maximum: the higher threshold


def specificity_threshold(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """Lowest threshold t with P(s < t | negative) ≥ target (the most sensitive such threshold)."""
    neg = np.sort(s[y == 0])
    if len(neg) == 0:
        return float(s.min())
    k = int(np.ceil(target * len(neg)))  # at least k negatives strictly below t
    if k == 0:
        return float(neg[0])
    t = neg[k - 1]
    return float(np.nextafter(t, np.inf))


def operating_threshold(y: np.ndarray, s: np.ndarray, rule: str, target_specificity: float | None) -> float:
    if rule == "youden":
        return youden_threshold(y, s)
    assert target_specificity is not None
    return specificity_threshold(y, s, target_specificity)


def exit_index(probs: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """Exit each sample takes: the first exit with confidence ≥ its θ (None: never), else the last."""
    n, n_exits = probs.shape
    chosen = np.full(n, n_exits - 1)
    undecided = np.ones(n, dtype=bool)
    confidence = np.maximum(probs, 1.0 - probs)
    for e, theta in enumerate(thresholds[: n_exits - 1]):
        if theta is None:
            continue
        leave = undecided & (confidence[:, e] >= theta)
        chosen[leave] = e
        undecided &= ~leave
    return chosen
