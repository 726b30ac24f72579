"""Thresholds frozen with a model, always chosen on the validation split, never on test.

Exit thresholds: one confidence threshold θ shared by the four ICs (the reference code's sweep),
confidence = max(p, 1 − p). A sample leaves at the first IC whose confidence ≥ θ, else the final head
decides. Candidates: every θ of the grid plus "no early exit". Criterion ``min_pfd``: the lowest
validation PFD of the served scores among candidates whose validation AUC is at least the final
exit's AUC minus ``tolerance`` (absolute AUC points); ties (to 1e-9) go to the lower mean compute.
``min_compute``: the lowest mean compute under the same AUC constraint, ties to the lower PFD.
"No early exit" always meets the constraint, so a choice always exists.

Operating threshold (on the served scores, after θ is fixed): Youden's J = TPR − FPR maximised over
the observed scores (ties: the higher threshold), or the lowest threshold whose specificity reaches
the target. Predictions are ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.training.metrics import auc, pfd, positive_fractions


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


@dataclass(frozen=True)
class ExitCandidate:
    theta: float | None
    auc: float
    pfd: float
    mean_compute: float


@dataclass(frozen=True)
class ExitChoice:
    thresholds: list[float | None]  # per exit; the final head's is always None
    candidates: list[ExitCandidate]
    chosen: ExitCandidate


def choose_exit_thresholds(
    y: np.ndarray,
    probs: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    costs: Sequence[float],
    *,
    grid: Sequence[float],
    criterion: str,
    tolerance: float,
) -> ExitChoice:
    n_exits = probs.shape[1]
    cost = np.asarray(costs)
    candidates = []
    for theta in [*grid, None]:
        idx = exit_index(probs, [theta] * (n_exits - 1) + [None])
        served = probs[np.arange(len(y)), idx]
        candidates.append(
            ExitCandidate(
                theta=theta,
                auc=auc(y, served),
                pfd=pfd(positive_fractions(y, served, codes, n_groups)),
                mean_compute=float(cost[idx].mean()),
            )
        )
    floor = auc(y, probs[:, -1]) - tolerance
    eligible = [c for c in candidates if c.theta is None or c.auc >= floor]

    def fairness(c: ExitCandidate) -> float:
        return round(c.pfd, 9) if np.isfinite(c.pfd) else np.inf

    if criterion == "min_pfd":
        best = min(eligible, key=lambda c: (fairness(c), c.mean_compute))
    else:
        best = min(eligible, key=lambda c: (round(c.mean_compute, 9), fairness(c)))
    return ExitChoice([best.theta] * (n_exits - 1) + [None], candidates, best)
