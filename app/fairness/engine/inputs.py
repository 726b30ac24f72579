"""The plain data structure that carries predictions into the metrics engine.

Training (test-split predictions), external validation, uploaded audits and serving monitoring all
hand the engine a ``PredictionSet``; the engine never needs to know where predictions came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PredictionSet:
    """Predictions of one model on one set of samples.

    Attributes:
        y_true: ``(n,)`` int array of 0/1 ground truth.
        exit_scores: ``(n, n_exits)`` float array: probability of the positive class at each exit.
            The last column is the final head. Single-exit models have one column.
        groups: attribute name -> ``(n,)`` object array of group labels (``str``); ``None`` marks a
            missing value, which joins no group.
        threshold: the frozen operating threshold; ``y_pred = score >= threshold``. Either one float
            or an ``(n,)`` float array, each sample's own threshold: pooled out-of-fold predictions of
            several models, each called at the threshold its model was chosen with.
        exit_index: ``(n,)`` int array: the exit the early-exit policy used for each sample, or
            ``None`` for single-exit models (the policy is then the final head).
        exit_cost: ``(n_exits,)`` fraction of the full network's multiply-adds spent by a sample that
            leaves at exit ``i`` (the last entry is 1.0), or ``None`` for single-exit models.
        sample_ids: optional ``(n,)`` identifiers, needed to pair evaluations in a comparison.
        clusters: optional ``(n,)`` cluster keys (a patient's hash): the bootstrap resamples clusters,
            so a patient's images move together. ``None``: every sample is its own cluster.
        folds: optional ``(n,)`` labels of the model that predicted each sample (a study's
            ``seed/fold``): pooled out-of-fold predictions report the spread across these beside
            each pooled value. ``None``: one model predicted every sample.
    """

    y_true: np.ndarray
    exit_scores: np.ndarray
    groups: Mapping[str, np.ndarray]
    threshold: float | np.ndarray
    exit_index: np.ndarray | None = None
    exit_cost: np.ndarray | None = None
    sample_ids: np.ndarray | None = field(default=None)
    clusters: np.ndarray | None = None
    folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.y_true)
        if self.exit_scores.ndim != 2 or self.exit_scores.shape[0] != n:
            raise ValueError("exit_scores must have shape (n, n_exits)")
        for name, values in self.groups.items():
            if len(values) != n:
                raise ValueError(f"group column {name!r} has {len(values)} values, expected {n}")
        if self.exit_index is not None and len(self.exit_index) != n:
            raise ValueError("exit_index must have one entry per sample")
        for name in ("sample_ids", "clusters", "folds"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"{name} must have one entry per sample")
        if self.exit_cost is not None and len(self.exit_cost) != self.exit_scores.shape[1]:
            raise ValueError("exit_cost must have one entry per exit")
        if np.shape(self.threshold) not in ((), (n,)):
            raise ValueError("threshold must be a float or have one entry per sample")

    @property
    def per_sample_threshold(self) -> bool:
        return np.ndim(self.threshold) == 1

    def threshold_in(self, order: np.ndarray) -> float | np.ndarray:
        """The threshold of the samples taken in ``order`` (a float stays a float)."""
        if not self.per_sample_threshold:
            return float(self.threshold)
        return np.asarray(self.threshold, dtype=np.float64)[order]

    @property
    def n_exits(self) -> int:
        return int(self.exit_scores.shape[1])

    @property
    def policy_scores(self) -> np.ndarray:
        """Scores as served: each sample's score at the exit the policy chose."""
        if self.exit_index is None:
            return self.exit_scores[:, -1]
        return self.exit_scores[np.arange(len(self.y_true)), self.exit_index]
