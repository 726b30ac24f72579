"""Multi-class and multi-label reports for the pages that render them, built by the engine from
simulated predictions: classes with Zipf-like support (Fitzpatrick 17k's 114 conditions are far from
balanced), skin type "VI" predicted worse, two exits so the pages show exit rates."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.fairness.engine import MulticlassPredictionSet, MultilabelPredictionSet, build_report

ATTRIBUTES = ["skin_type", "sex"]


def _groups(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "skin_type": rng.choice(["I-II", "III-IV", "VI"], n).astype(object),
        "sex": rng.choice(["F", "M"], n).astype(object),
    }


def _exits(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {"exit_index": (rng.random(n) < 0.4).astype(np.int64), "exit_cost": np.array([0.5, 1.0])}


def multiclass_report(
    n_classes: int,
    n: int = 3000,
    seed: int = 0,
    hostile: str | None = None,
    n_boot: int = 20,
    class_thresholds: list[float] | None = None,
) -> dict[str, Any]:
    """``n`` samples over ``n_classes``; ``hostile`` renames class 0 (the most frequent);
    ``class_thresholds``: the class-threshold decision rule instead of argmax."""
    rng = np.random.default_rng(seed)
    classes = [f"class {c:03d}" for c in range(n_classes)]
    if hostile is not None:
        classes[0] = hostile
    weights = 1.0 / np.arange(1, n_classes + 1)
    y = rng.choice(n_classes, n, p=weights / weights.sum())
    groups = _groups(rng, n)
    signal = np.where(groups["skin_type"] == "VI", 1.5, 3.0)
    logits = rng.normal(0.0, 1.0, (n, 2, n_classes))
    logits[np.arange(n), :, y] += signal[:, None] * np.array([0.7, 1.0])
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    predictions = MulticlassPredictionSet(
        y_true=y,
        exit_probs=probs,
        classes=tuple(classes),
        groups=groups,
        class_thresholds=None if class_thresholds is None else np.asarray(class_thresholds),
        **_exits(rng, n),
    )
    return build_report(predictions, attributes=ATTRIBUTES, intersections=False, n_boot=n_boot, seed=seed)


def multilabel_report(findings: list[str], n: int = 600, seed: int = 0) -> dict[str, Any]:
    """Each finding present in about 30 % of the samples and unknown in about 10 %."""
    rng = np.random.default_rng(seed)
    f = len(findings)
    y = (rng.random((n, f)) < 0.3).astype(np.int64)
    y[rng.random((n, f)) < 0.1] = -1
    y[(y < 0).all(axis=1), 0] = 0  # every sample keeps one known finding
    groups = _groups(rng, n)
    separation = np.where(groups["skin_type"] == "VI", 0.6, 1.6)[:, None, None]
    noise = rng.normal(0.0, 1.0, (n, 2, f))
    scores = 1.0 / (1.0 + np.exp(-(noise + separation * (y[:, None, :] == 1) - 0.8)))
    predictions = MultilabelPredictionSet(
        y_true=y,
        exit_scores=scores,
        findings=tuple(findings),
        groups=groups,
        thresholds=np.full(f, 0.5),
        **_exits(rng, n),
    )
    return build_report(predictions, attributes=ATTRIBUTES, n_boot=20, seed=seed)
