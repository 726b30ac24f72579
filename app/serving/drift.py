"""Drift signals that need no outcomes: each group's served-score distribution and early-exit rates
against the model's audit, the predictions its training job stored for its test-split evaluation.

The score is what a served row stores as ``probability`` (``served_scores``), for every task.
A multi-exit model's exit rates are a free input-drift sensor: a group whose images got harder, or
different, leaves at other exits before any outcome arrives. Definitions (PSI, KS) are in
``app.fairness.engine.live``; the audit's counts are cached per evaluation (its files never change).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.live import GroupCounts, ks, psi
from app.fairness.storage import evaluation_dir, load_predictions
from app.serving import registry
from app.serving.aggregates import EVERYONE, N_SCORE_BINS, OVERALL
from app.serving.schemas import DriftGroup, DriftOut
from app.settings import Settings

Groups = dict[tuple[str, str], GroupCounts]


@dataclass(frozen=True)
class AuditCounts:
    evaluation_id: str
    n_exits: int
    groups: Groups


def audit_counts(session: Session, settings: Settings, organisation_id: str, model_id: str) -> AuditCounts | None:
    """The audit's per-group score histograms and exit counts; ``None`` for a model without one."""
    evaluation_id = registry.training_evaluations(session, organisation_id, [model_id]).get(model_id)
    if evaluation_id is None:
        return None
    folder = evaluation_dir(settings, evaluation_id)
    return _load(folder, evaluation_id) if folder.is_dir() else None


@lru_cache(maxsize=32)
def _load(folder: Path, evaluation_id: str) -> AuditCounts:
    predictions = load_predictions(folder)
    bins = np.clip((served_scores(predictions) * N_SCORE_BINS).astype(np.int64), 0, N_SCORE_BINS - 1)
    n_exits = predictions.n_exits
    exits = predictions.exit_index if predictions.exit_index is not None else np.full(len(bins), n_exits - 1)
    masks = {(OVERALL, EVERYONE): np.ones(len(bins), dtype=bool)}
    for attribute, values in predictions.groups.items():
        for group in sorted({str(v) for v in values if v is not None}):
            masks[attribute, group] = values == group
    groups = {}
    for key, mask in masks.items():
        counts = GroupCounts(N_SCORE_BINS, n=int(mask.sum()))
        counts.score = np.bincount(bins[mask], minlength=N_SCORE_BINS)
        counts.exits = dict(enumerate(np.bincount(exits[mask], minlength=n_exits).tolist()))
        groups[key] = counts
    return AuditCounts(evaluation_id, n_exits, groups)


def served_scores(predictions: AnyPredictionSet) -> np.ndarray:
    """The audit's counterpart of a served row's ``probability`` (``Prediction``), so both histograms
    measure the same thing: binary, the positive class's probability; multiclass, the predicted
    class's; multilabel, the largest finding probability; each at the exit the policy chose."""
    if isinstance(predictions, MulticlassPredictionSet):
        probs = predictions.policy_probs
        return probs[np.arange(len(probs)), predictions.predicted(probs)]
    if isinstance(predictions, MultilabelPredictionSet):
        if predictions.exit_index is None:
            return predictions.exit_scores[:, -1, :].max(axis=1)
        return predictions.exit_scores[np.arange(len(predictions.y_true)), predictions.exit_index, :].max(axis=1)
    return predictions.policy_scores


def exit_rate_shift(live: GroupCounts, audit: GroupCounts, n_exits: int) -> float | None:
    """The largest change, over exits, of the share of the group's predictions leaving there."""
    if n_exits < 2 or live.n == 0 or audit.n == 0:
        return None
    return max(abs(live.exits.get(k, 0) / live.n - audit.exits.get(k, 0) / audit.n) for k in range(n_exits))


def drift(live: Groups, audit: AuditCounts) -> DriftOut:
    groups = [
        DriftGroup(
            attribute=attribute,
            group=group,
            n=counts.n,
            audit_n=audit.groups[attribute, group].n,
            psi=psi(audit.groups[attribute, group].score, counts.score),
            ks=ks(audit.groups[attribute, group].score, counts.score),
            exit_rate_shift=exit_rate_shift(counts, audit.groups[attribute, group], audit.n_exits),
        )
        for (attribute, group), counts in sorted(live.items())
        if counts.n and (attribute, group) in audit.groups and audit.groups[attribute, group].n
    ]
    return DriftOut(evaluation_id=audit.evaluation_id, groups=groups)
