"""From graph logits to probabilities and the exit each sample takes, for every task.

The exporter's parity check, training's threshold choice and the evaluation job share these, so the
probabilities and exits a model was selected and checked on are the ones it is evaluated with.
Shapes follow ``app.modelpkg.task``: a binary graph returns ``(n, exits)`` logits, the others
``(n, exits, width)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.modelpkg.task import TaskKind, exit_confidence


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 so that each row sums to 1 within 1e-12."""
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(kind: TaskKind, logits: np.ndarray) -> np.ndarray:
    """A graph's logits as probabilities (``app.modelpkg.task``): softmax over the classes for a
    multiclass task, else a sigmoid per logit (the binary label, or each finding) in the logits' own
    float type, so binary numbers are what they always were."""
    return softmax(logits) if kind == "multiclass" else sigmoid(np.asarray(logits))


def exit_confidences(kind: TaskKind, exit_probs: np.ndarray) -> np.ndarray:
    """``(n, exits)``: each exit's confidence per sample (``exit_confidence``'s rule for the task)."""
    return np.stack([exit_confidence(kind, exit_probs[:, e]) for e in range(exit_probs.shape[1])], axis=1)


def exit_index(kind: TaskKind, exit_probs: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """The exit each sample takes: the first exit whose confidence ≥ its θ (``None``: never), else the
    last. For a binary task this is ``app.fairness.engine.thresholds.exit_index`` (tested equal)."""
    confidence = exit_confidences(kind, exit_probs)
    n, n_exits = confidence.shape
    chosen = np.full(n, n_exits - 1)
    undecided = np.ones(n, dtype=bool)
    for e, theta in enumerate(thresholds[: n_exits - 1]):
        if theta is None:
            continue
        leave = undecided & (confidence[:, e] >= theta)
        chosen[leave] = e
        undecided &= ~leave
    return chosen


def served(exit_probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Each sample's probabilities at its exit: ``(n,)`` binary, ``(n, width)`` otherwise."""
    return exit_probs[np.arange(len(exit_probs)), index]
