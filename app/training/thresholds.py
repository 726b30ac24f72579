"""Exit thresholds frozen with a model, always chosen on the validation split, never on test.

One confidence threshold θ shared by the four ICs (the reference code's sweep), confidence =
max(p, 1 − p). A sample leaves at the first IC whose confidence ≥ θ, else the final head decides
(that policy, ``exit_index``, and the operating threshold are the metrics engine's:
``app.fairness.engine.thresholds``). Candidates: every θ of the grid plus "no early exit".

Criterion ``min_pfd``: the lowest validation PFD of the served scores among candidates whose
validation AUC is at least the final exit's AUC minus ``tolerance`` (absolute AUC points); ties (to
1e-9) go to the lower mean compute. ``min_compute``: the lowest mean compute under the same AUC
constraint, ties to the lower PFD. "No early exit" always meets the constraint, so a choice always
exists. AUC and PFD are the engine's (``app.fairness.engine.ranking``): the fairness a model was
selected on is the fairness its report measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.ranking import auc, pfd, positive_fractions
from app.fairness.engine.thresholds import exit_index


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
