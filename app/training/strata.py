"""The label part of a sample's stratum, per task: what stratified batches and fold splits balance.

Torch-free, so config validation (fold plans) can use it without loading the training stack.
"""

from __future__ import annotations

import numpy as np

from app.modelpkg.task import Task


def stratum_labels(labels: np.ndarray, task: Task) -> np.ndarray:
    """``(n,)`` int: the binary label or the class index as is; for a multi-label row its first present
    finding (``F`` when none is present; an unknown entry counts as absent), so every finding's
    positives are spread over batches and folds (documented in docs/methods.md, training)."""
    if task.kind != "multilabel":
        return np.asarray(labels).astype(np.int64)
    present = labels == 1
    return np.where(present.any(axis=1), present.argmax(axis=1), labels.shape[1]).astype(np.int64)


def prioritised_labels(task: Task) -> tuple[int, ...]:
    """Stratum labels served first when a batch cannot hold every stratum: the positives (binary), every
    class (multiclass: each is a one-vs-rest positive), every finding (multilabel; not "no finding")."""
    return (1,) if task.kind == "binary" else tuple(range(task.width))
