"""What a model predicts: one binary label, one of K classes, or several binary findings.

The task travels with a cohort (``CohortArrays.task``), a training run, a model folder (``model.json``
``task`` and ``decision``) and every prediction served from it, so each party decides the same way.
It lives in the model format because training writes it and serving, evaluation and reports read it.

Label and score shapes per task (``n`` samples, ``K`` classes, ``F`` findings, ``E`` exits):

=============  ================================  =====================================================
task           labels                            scores / logits per exit
=============  ================================  =====================================================
``binary``     ``(n,)`` 0/1                      ``(n,)`` P(positive) = sigmoid(logit)
``multiclass`` ``(n,)`` class index 0..K-1       ``(n, K)`` softmax(logits), rows sum to 1
``multilabel`` ``(n, F)`` 0/1, ``-1`` = unknown  ``(n, F)`` sigmoid(logit) per finding
=============  ================================  =====================================================

A ``-1`` multi-label entry (an uncertain or blank finding under the ``missing`` policy) takes no part
in that finding's loss or metrics; the sample still counts for the other findings.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import numpy as np
from pydantic import Field, StringConstraints, model_validator

from app.modelpkg.base import Section

TaskKind = Literal["binary", "multiclass", "multilabel"]
MAX_CLASSES: Final = 256  # Fitzpatrick 17k's fine labels are 114
MAX_FINDINGS: Final = 32  # CheXpert has 14
UNKNOWN_FINDING: Final = -1

#: A class or finding name: printable, no leading/trailing space, short enough for a report column.
ClassName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]

CONFIDENCE_RULES: Final[dict[str, str]] = {
    "binary": "max(p, 1 - p)",
    "multiclass": "max softmax",
    "multilabel": "min over findings of max(p, 1 - p)",
}


class Task(Section):
    """The task and its output names, in output order (``classes`` is empty for a binary task)."""

    kind: TaskKind = "binary"
    classes: list[ClassName] = Field(
        default_factory=list,
        description="multiclass: the K >= 2 class names in logit order; multilabel: the F >= 1 finding "
        "names in logit order; binary: [] (the positive class is label 1)",
    )

    @model_validator(mode="after")
    def _classes_fit_kind(self) -> Task:
        names = self.classes
        if len(set(names)) != len(names):
            raise ValueError("classes lists a name twice")
        if self.kind == "binary" and names:
            raise ValueError("a binary task lists no classes (label 1 is the positive class)")
        if self.kind == "multiclass" and not 2 <= len(names) <= MAX_CLASSES:
            raise ValueError(f"a multiclass task needs 2 to {MAX_CLASSES} classes, got {len(names)}")
        if self.kind == "multilabel" and not 1 <= len(names) <= MAX_FINDINGS:
            raise ValueError(f"a multilabel task needs 1 to {MAX_FINDINGS} findings, got {len(names)}")
        return self

    @property
    def width(self) -> int:
        """Logits (and probabilities) per exit: 1, K or F."""
        return 1 if self.kind == "binary" else len(self.classes)

    @property
    def confidence_rule(self) -> str:
        return CONFIDENCE_RULES[self.kind]


BINARY: Final = Task()


def multiclass_decision(probs: np.ndarray, class_thresholds: np.ndarray | None) -> np.ndarray:
    """Predicted class per row of ``probs`` ``(n, K)``: ``argmax_c p_c / t_c`` (plain argmax when
    ``class_thresholds`` is ``None``). Dividing by a per-class threshold lets a rare class win with a
    smaller probability; equal thresholds give argmax. The metrics engine applies the same rule
    (``app.fairness.engine.multiclass``), kept there because the engine imports nothing from ``app``."""
    if class_thresholds is None:
        return np.argmax(probs, axis=1)
    return np.argmax(probs / np.asarray(class_thresholds, dtype=np.float64)[None, :], axis=1)


def exit_confidence(kind: TaskKind, probs: np.ndarray) -> np.ndarray:
    """Confidence of one exit per sample (``docs/methods.md``, early-exit inference): binary
    ``max(p, 1 − p)`` of ``(n,)``; multiclass the largest softmax of ``(n, K)``; multilabel the least
    confident finding's ``max(p, 1 − p)`` of ``(n, F)`` (a sample leaves only when every finding is sure)."""
    if kind == "binary":
        return np.maximum(probs, 1.0 - probs)
    if kind == "multiclass":
        return probs.max(axis=1)
    return np.maximum(probs, 1.0 - probs).min(axis=1)
