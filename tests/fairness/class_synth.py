"""Simulated multi-class and multi-label predictions for the fairness-engine tests."""

from __future__ import annotations

import numpy as np

from app.fairness.engine import MulticlassPredictionSet, MultilabelPredictionSet


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def simulate_classes(
    n: int,
    seed: int,
    *,
    k: int = 3,
    n_exits: int = 1,
    skin_shift: float = 0.0,
    missing: float = 0.0,
    clusters: int = 0,
) -> MulticlassPredictionSet:
    """K-class softmax predictions; skin type "VI" gets ``skin_shift`` less signal for its true class."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n).astype(object)
    skin = rng.choice(["I", "II", "III", "IV", "V", "VI"], n).astype(object)
    if missing:
        sex[rng.random(n) < missing] = None
    y = rng.integers(0, k, n)
    signal = 1.5 - skin_shift * (skin == "VI")
    probs = []
    for e in range(n_exits):
        logits = rng.normal(0.0, 1.0, (n, k))
        logits[np.arange(n), y] += (0.6 + 0.4 * e / max(n_exits - 1, 1)) * signal
        probs.append(softmax(logits))
    exit_probs = np.stack(probs, axis=1)
    exit_index = exit_cost = None
    if n_exits > 1:
        confident = exit_probs.max(axis=2) >= 0.7
        confident[:, -1] = True
        exit_index = confident.argmax(axis=1)
        exit_cost = np.linspace(1.0 / n_exits, 1.0, n_exits)
    return MulticlassPredictionSet(
        y_true=y,
        exit_probs=exit_probs,
        classes=tuple(f"class_{c}" for c in range(k)),
        groups={"sex": sex, "skin_type": skin},
        exit_index=exit_index,
        exit_cost=exit_cost,
        sample_ids=np.arange(n),
        clusters=None if not clusters else rng.integers(0, clusters, n).astype(str).astype(object),
    )


def simulate_findings(n: int, seed: int, *, findings: int = 3, unknown: float = 0.1) -> MultilabelPredictionSet:
    """Independent findings with logistic scores; ``unknown`` of the labels are -1 (never a whole row)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n).astype(object)
    y = (rng.random((n, findings)) < 0.3).astype(np.int64)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, (n, findings)) + 1.5 * y - 1.0)))
    hidden = rng.random((n, findings)) < unknown
    hidden[:, 0] &= ~hidden[:, 1:].all(axis=1)  # keep one known finding per row
    y[hidden] = -1
    return MultilabelPredictionSet(
        y_true=y,
        exit_scores=scores[:, None, :],
        findings=tuple(f"finding_{f}" for f in range(findings)),
        groups={"sex": sex},
        thresholds=np.full(findings, 0.5),
        sample_ids=np.arange(n),
    )


def class_grouping(report: dict, attribute: str, exit_key: object = "policy") -> dict:
    evaluation = next(e for e in report["evaluations"] if e["exit"] == exit_key)
    return next(g for g in evaluation["groupings"] if g["attribute"] == attribute)
