"""Pooling a config's out-of-fold predictions: each sample predicted by the one model that never saw
it, concatenated over folds and seeds into one ``PredictionSet``.

A pooled operating point: each sample is called positive exactly when its own fold model called it
positive at that model's own threshold (chosen on its validation split). The engine takes one
threshold per prediction set, so each fold's scores are shifted on the logit scale by
``logit(pooled) − logit(own)``, where the pooled threshold is the median of the fold models'
thresholds: a monotone map, so the ranking within a fold (its AUC, its PF) is unchanged, and the
decisions are exactly the fold models' (a score on the boundary is pinned to its side). Across folds
the shift is an intercept recalibration of each model to the common threshold; metrics that compare
scores across folds (the pooled AUC and PF, ECE, Brier) are computed on these aligned scores. The
models' own thresholds are listed in the study's result.

Sample ids become ``s<seed>/<item id>`` (a sample appears once per seed), clusters the patient (the
item when none: the bootstrap resamples patients), folds ``s<seed>/f<fold>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.inputs import PredictionSet

EPS = 1e-7


@dataclass(frozen=True)
class FoldPredictions:
    seed: int
    fold: int
    predictions: PredictionSet  # the fold model's, on its held-out fold


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def align_threshold(scores: np.ndarray, own: float, pooled: float) -> np.ndarray:
    """``scores`` moved so that ``score >= own`` holds exactly where the result is ``>= pooled``."""
    if own == pooled:
        return scores
    moved = 1 / (1 + np.exp(-(_logit(scores) + _logit(pooled) - _logit(own))))
    above = scores >= own
    below_pooled = np.nextafter(pooled, -np.inf)
    return np.where(above, np.maximum(moved, pooled), np.minimum(moved, below_pooled))


def pool(parts: Sequence[FoldPredictions], patient_of: Mapping[str, str | None]) -> PredictionSet:
    """One prediction set of every part (see the module docstring); the parts share their groups."""
    if not parts:
        raise ValueError("nothing to pool")
    threshold = float(np.median([p.predictions.threshold for p in parts]))
    attributes = set.intersection(*(set(p.predictions.groups) for p in parts))
    multi = all(p.predictions.exit_index is not None for p in parts)
    ids, clusters, folds = [], [], []
    for part in parts:
        raw = part.predictions.sample_ids
        items = [str(i) for i in (raw if raw is not None else range(len(part.predictions.y_true)))]
        ids += [f"s{part.seed}/{item}" for item in items]
        clusters += [patient_of.get(item) or item for item in items]
        folds += [f"s{part.seed}/f{part.fold}"] * len(items)
    first = parts[0].predictions
    return PredictionSet(
        y_true=np.concatenate([p.predictions.y_true for p in parts]),
        exit_scores=np.concatenate(
            [align_threshold(p.predictions.exit_scores, p.predictions.threshold, threshold) for p in parts]
        ),
        groups={
            a: np.concatenate([np.asarray(p.predictions.groups[a], dtype=object) for p in parts]) for a in attributes
        },
        threshold=threshold,
        exit_index=np.concatenate([p.predictions.exit_index for p in parts]) if multi else None,
        exit_cost=first.exit_cost if multi else None,
        sample_ids=np.asarray(ids, dtype=object),
        clusters=np.asarray(clusters, dtype=object),
        folds=np.asarray(folds, dtype=object),
    )
