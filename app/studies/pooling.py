"""Pooling a config's out-of-fold predictions: each sample predicted by the one model that never saw
it, concatenated over folds and seeds into one ``PredictionSet``.

The pooled set keeps every fold model's raw scores and carries a per-sample threshold: each sample is
called positive exactly when its own fold model called it positive at that model's own threshold
(chosen on its validation split). Metrics that compare scores across folds (the pooled AUC and PF, ECE,
Brier) see the scores the models produced; the across-fold spread beside each pooled value shows how
far the models differ. The report's ``threshold`` is the median of the models' (flagged
``threshold_per_sample``); the models' own thresholds are listed in the study's result.

Sample ids become ``s<seed>/<item id>`` (a sample appears once per seed), clusters the patient (the
item when none: the bootstrap resamples patients), folds ``s<seed>/f<fold>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.inputs import PredictionSet


@dataclass(frozen=True)
class FoldPredictions:
    seed: int
    fold: int
    predictions: PredictionSet  # the fold model's, on its held-out fold


def pool(parts: Sequence[FoldPredictions], patient_of: Mapping[str, str | None]) -> PredictionSet:
    """One prediction set of every part (see the module docstring); the parts share their groups."""
    if not parts:
        raise ValueError("nothing to pool")
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
        exit_scores=np.concatenate([p.predictions.exit_scores for p in parts]),
        groups={
            a: np.concatenate([np.asarray(p.predictions.groups[a], dtype=object) for p in parts]) for a in attributes
        },
        threshold=np.concatenate(
            [
                np.broadcast_to(np.asarray(p.predictions.threshold, dtype=np.float64), len(p.predictions.y_true))
                for p in parts
            ]
        ),
        exit_index=np.concatenate([p.predictions.exit_index for p in parts]) if multi else None,
        exit_cost=first.exit_cost if multi else None,
        sample_ids=np.asarray(ids, dtype=object),
        clusters=np.asarray(clusters, dtype=object),
        folds=np.asarray(folds, dtype=object),
    )
