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
        _check_sample_columns(self, n)
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


def _check_sample_columns(owner: PredictionSet | MulticlassPredictionSet | MultilabelPredictionSet, n: int) -> None:
    """The per-sample columns every prediction set may carry have one entry per sample."""
    for name, values in owner.groups.items():
        if len(values) != n:
            raise ValueError(f"group column {name!r} has {len(values)} values, expected {n}")
    for name in ("exit_index", "sample_ids", "clusters", "folds"):
        column = getattr(owner, name)
        if column is not None and len(column) != n:
            raise ValueError(f"{name} must have one entry per sample")


@dataclass(frozen=True)
class MulticlassPredictionSet:
    """Predictions of one K-class model (``docs/metrics.md``, multi-class tasks).

    Attributes:
        y_true: ``(n,)`` int class index in ``0..K-1``.
        exit_probs: ``(n, n_exits, K)`` float: each exit's softmax; each row sums to 1.
        classes: the K class names, in column order.
        class_thresholds: ``None`` (``y_pred`` = argmax) or ``(K,)`` per-class thresholds
            (``y_pred = argmax_c p_c / t_c``, the model format's ``multiclass_decision``).
        groups, exit_index, exit_cost, sample_ids, clusters, folds: as in ``PredictionSet``.
    """

    y_true: np.ndarray
    exit_probs: np.ndarray
    classes: tuple[str, ...]
    groups: Mapping[str, np.ndarray]
    class_thresholds: np.ndarray | None = None
    exit_index: np.ndarray | None = None
    exit_cost: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    clusters: np.ndarray | None = None
    folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, k = len(self.y_true), len(self.classes)
        if self.exit_probs.ndim != 3 or self.exit_probs.shape[0] != n or self.exit_probs.shape[2] != k:
            raise ValueError(f"exit_probs must have shape (n, n_exits, {k})")
        _check_sample_columns(self, n)
        if self.exit_cost is not None and len(self.exit_cost) != self.n_exits:
            raise ValueError("exit_cost must have one entry per exit")
        if self.class_thresholds is not None and np.shape(self.class_thresholds) != (k,):
            raise ValueError("class_thresholds must have one entry per class")

    @property
    def n_exits(self) -> int:
        return int(self.exit_probs.shape[1])

    @property
    def policy_probs(self) -> np.ndarray:
        """``(n, K)`` probabilities as served: each sample's exit chosen by the policy."""
        if self.exit_index is None:
            return self.exit_probs[:, -1, :]
        return self.exit_probs[np.arange(len(self.y_true)), self.exit_index, :]

    def predicted(self, probs: np.ndarray) -> np.ndarray:
        """Class index per row of ``(n, K)`` probabilities under this model's decision rule."""
        if self.class_thresholds is None:
            return np.argmax(probs, axis=1)
        return np.argmax(probs / np.asarray(self.class_thresholds, dtype=np.float64)[None, :], axis=1)


@dataclass(frozen=True)
class MultilabelPredictionSet:
    """Predictions of one model with F binary findings per image; each finding is its own binary task.

    Attributes:
        y_true: ``(n, F)`` int: 1 present, 0 absent, -1 unknown (the sample takes no part in that
            finding's metrics).
        exit_scores: ``(n, n_exits, F)`` float: each exit's sigmoid per finding.
        findings: the F finding names, in column order.
        thresholds: ``(F,)`` per-finding operating thresholds, or ``(n, F)`` one per sample and finding
            (pooled out-of-fold predictions).
        groups, exit_index, exit_cost, sample_ids, clusters, folds: as in ``PredictionSet``.
    """

    y_true: np.ndarray
    exit_scores: np.ndarray
    findings: tuple[str, ...]
    groups: Mapping[str, np.ndarray]
    thresholds: np.ndarray
    exit_index: np.ndarray | None = None
    exit_cost: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    clusters: np.ndarray | None = None
    folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, f = len(self.y_true), len(self.findings)
        if self.y_true.ndim != 2 or self.y_true.shape[1] != f:
            raise ValueError(f"y_true must have shape (n, {f})")
        if self.exit_scores.ndim != 3 or self.exit_scores.shape[0] != n or self.exit_scores.shape[2] != f:
            raise ValueError(f"exit_scores must have shape (n, n_exits, {f})")
        _check_sample_columns(self, n)
        if self.exit_cost is not None and len(self.exit_cost) != self.n_exits:
            raise ValueError("exit_cost must have one entry per exit")
        if np.shape(self.thresholds) not in ((f,), (n, f)):
            raise ValueError("thresholds must have one entry per finding, or per sample and finding")

    @property
    def n_exits(self) -> int:
        return int(self.exit_scores.shape[1])

    def finding(self, index: int) -> PredictionSet:
        """Finding ``index`` as a binary ``PredictionSet`` over the samples whose label is known."""
        known = np.flatnonzero(self.y_true[:, index] >= 0)

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else np.asarray(column)[known]

        thresholds = np.asarray(self.thresholds, dtype=np.float64)
        threshold: float | np.ndarray = float(thresholds[index]) if thresholds.ndim == 1 else thresholds[known, index]
        return PredictionSet(
            y_true=self.y_true[known, index].astype(np.int64),
            exit_scores=self.exit_scores[known, :, index],
            groups={name: np.asarray(values, dtype=object)[known] for name, values in self.groups.items()},
            threshold=threshold,
            exit_index=pick(self.exit_index),
            exit_cost=self.exit_cost,
            sample_ids=pick(self.sample_ids),
            clusters=pick(self.clusters),
            folds=pick(self.folds),
        )


AnyPredictionSet = PredictionSet | MulticlassPredictionSet | MultilabelPredictionSet
