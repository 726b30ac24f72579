"""Pooling a config's out-of-fold predictions: each sample predicted by the one model that never saw
it, concatenated over folds and seeds into one ``PredictionSet``.

The pooled set keeps every fold model's raw scores and carries a per-sample threshold: each sample is
called positive exactly when its own fold model called it positive at that model's own threshold
(chosen on its validation split). Metrics that compare scores across folds (the pooled AUC and PF, ECE,
Brier) see the scores the models produced; the across-fold spread beside each pooled value shows how
far the models differ. The report's ``threshold`` is the median of the models' (flagged
``threshold_per_sample``); the models' own thresholds are listed in the study's result.

Multiclass folds pool their probabilities under one decision rule (argmax, or class thresholds every fold
model shares); multilabel folds keep each fold model's per-finding thresholds as ``(n, F)`` per-sample
thresholds. Parts of different tasks or classes are refused.

Sample ids become ``s<seed>/<item id>`` (a sample appears once per seed), clusters the patient (the
item when none: the bootstrap resamples patients), folds ``s<seed>/f<fold>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.evaluation import check_same_task


@dataclass(frozen=True)
class FoldPredictions:
    seed: int
    fold: int
    predictions: AnyPredictionSet  # the fold model's, on its held-out fold


def pool(parts: Sequence[FoldPredictions], patient_of: Mapping[str, str | None]) -> AnyPredictionSet:
    """One prediction set of every part (see the module docstring); the parts share their groups and
    their task (``ValueError`` naming the first part whose task or classes differ)."""
    if not parts:
        raise ValueError("nothing to pool")
    check_same_task({f"s{p.seed}/f{p.fold}": p.predictions for p in parts}, "fold")
    attributes = set.intersection(*(set(p.predictions.groups) for p in parts))
    multi = all(p.predictions.exit_index is not None for p in parts)
    ids, clusters, folds = [], [], []
    for part in parts:
        raw = part.predictions.sample_ids
        items = [str(i) for i in (raw if raw is not None else range(len(part.predictions.y_true)))]
        ids += [f"s{part.seed}/{item}" for item in items]
        clusters += [patient_of.get(item) or item for item in items]
        folds += [f"s{part.seed}/f{part.fold}"] * len(items)
    sets = [p.predictions for p in parts]
    common: dict[str, Any] = {
        "y_true": np.concatenate([p.y_true for p in sets]),
        "groups": {a: np.concatenate([np.asarray(p.groups[a], dtype=object) for p in sets]) for a in attributes},
        "exit_index": np.concatenate([np.asarray(p.exit_index) for p in sets]) if multi else None,
        "exit_cost": sets[0].exit_cost if multi else None,
        "sample_ids": np.asarray(ids, dtype=object),
        "clusters": np.asarray(clusters, dtype=object),
        "folds": np.asarray(folds, dtype=object),
    }
    first = sets[0]
    if isinstance(first, MulticlassPredictionSet):
        multiclass = [p for p in sets if isinstance(p, MulticlassPredictionSet)]
        return MulticlassPredictionSet(
            exit_probs=np.concatenate([p.exit_probs for p in multiclass]),
            classes=first.classes,
            class_thresholds=_shared_class_thresholds(parts),
            **common,
        )
    if isinstance(first, MultilabelPredictionSet):
        multilabel = [p for p in sets if isinstance(p, MultilabelPredictionSet)]
        return MultilabelPredictionSet(
            exit_scores=np.concatenate([p.exit_scores for p in multilabel]),
            findings=first.findings,
            thresholds=np.concatenate(
                [np.broadcast_to(np.asarray(p.thresholds, dtype=np.float64), p.y_true.shape) for p in multilabel]
            ),
            **common,
        )
    binary = [p for p in sets if isinstance(p, PredictionSet)]
    return PredictionSet(
        exit_scores=np.concatenate([p.exit_scores for p in binary]),
        threshold=np.concatenate(
            [np.broadcast_to(np.asarray(p.threshold, dtype=np.float64), len(p.y_true)) for p in binary]
        ),
        **common,
    )


def _shared_class_thresholds(parts: Sequence[FoldPredictions]) -> np.ndarray | None:
    """The fold models' class thresholds, when they decide alike (argmax, or the same thresholds): a
    multiclass prediction set has one decision rule, not one per sample."""
    rules = [getattr(p.predictions, "class_thresholds", None) for p in parts]
    keys = [None if rule is None else tuple(float(t) for t in rule) for rule in rules]
    for part, key in zip(parts, keys, strict=True):
        if key != keys[0]:
            raise ValueError(
                f"fold s{part.seed}/f{part.fold} decides with other class thresholds than fold "
                f"s{parts[0].seed}/f{parts[0].fold}: pooling needs one multiclass decision rule"
            )
    return rules[0]


def decision_thresholds(predictions: AnyPredictionSet) -> float | list[float] | None:
    """A fold model's decision thresholds as JSON: binary its threshold, multiclass its class thresholds
    (``None``: argmax), multilabel one per finding."""
    if isinstance(predictions, MulticlassPredictionSet):
        rule = predictions.class_thresholds
        return None if rule is None else [float(t) for t in rule]
    if isinstance(predictions, MultilabelPredictionSet):
        return [float(t) for t in np.asarray(predictions.thresholds, dtype=np.float64).reshape(-1)]
    return float(predictions.threshold) if not predictions.per_sample_threshold else None
