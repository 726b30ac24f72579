"""Exit thresholds frozen with a model, always chosen on the validation split, never on test.

One confidence threshold θ shared by the four ICs (the reference code's sweep); confidence is the
task's (``app.modelpkg.task.exit_confidence``: max(p, 1 − p), the largest softmax, or the least
confident finding's max(p, 1 − p)). A sample leaves at the first IC whose confidence ≥ θ, else the
final head decides (``app.modelpkg.outputs.exit_index``; for a binary task the metrics engine's
``exit_index``). Candidates: every θ of the grid plus "no early exit".

Criterion ``min_pfd``: the smallest validation fairness gap of the served output among candidates
whose validation quality is at least the final exit's minus ``tolerance`` (absolute points); ties (to
1e-9) go to the lower mean compute. ``min_compute``: the lowest mean compute under the same quality
constraint, ties to the smaller gap. "No early exit" always meets the constraint, so a choice always
exists. Quality and gap per task (``app.training.task_metrics``): binary AUC and PFD; multiclass macro
F1 (argmax decisions) and multi-class Eopp1 over the training groups; multilabel mean per-finding AUC
and mean per-finding PFD. Binary AUC and PFD are the engine's (``app.fairness.engine.ranking``): the
fairness a model was selected on is the fairness its report measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.modelpkg.outputs import exit_index, served
from app.modelpkg.task import BINARY, Task
from app.training.task_metrics import ExitScores, score_exit


@dataclass(frozen=True)
class ExitCandidate:
    theta: float | None
    auc: float
    pfd: float
    mean_compute: float
    macro_f1: float | None = None  # multiclass: the quality a candidate must keep
    eopp1: float | None = None  # multiclass: the gap minimised

    @classmethod
    def of(cls, theta: float | None, scores: ExitScores, mean_compute: float) -> ExitCandidate:
        return cls(theta, scores.auc, scores.pfd, mean_compute, scores.macro_f1, scores.eopp1)

    @property
    def quality(self) -> float:
        return self.auc if self.macro_f1 is None else self.macro_f1

    @property
    def gap(self) -> float:
        return self.pfd if self.eopp1 is None else self.eopp1


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
    task: Task = BINARY,
) -> ExitChoice:
    """``probs``: every exit's validation probabilities, ``(n, exits)`` or ``(n, exits, width)``."""
    n_exits = probs.shape[1]
    cost = np.asarray(costs)
    candidates = []
    for theta in [*grid, None]:
        idx = exit_index(task.kind, probs, [theta] * (n_exits - 1) + [None])
        scores = score_exit(task, y, served(probs, idx), codes, n_groups)
        candidates.append(ExitCandidate.of(theta, scores, float(cost[idx].mean())))
    final = ExitCandidate.of(None, score_exit(task, y, probs[:, -1], codes, n_groups), float(cost[-1]))
    floor = final.quality - tolerance
    eligible = [c for c in candidates if c.theta is None or c.quality >= floor]

    def fairness(c: ExitCandidate) -> float:
        return round(c.gap, 9) if np.isfinite(c.gap) else np.inf

    if criterion == "min_pfd":
        best = min(eligible, key=lambda c: (fairness(c), c.mean_compute))
    else:
        best = min(eligible, key=lambda c: (round(c.mean_compute, 9), fairness(c)))
    return ExitChoice([best.theta] * (n_exits - 1) + [None], candidates, best)
