"""Checks on a multi-class prediction set, each naming the first offending row, exit or class."""

from __future__ import annotations

import numpy as np

from app.fairness.engine.inputs import MulticlassPredictionSet

SUM_TOLERANCE = 1e-4  # a softmax row sums to 1 within this


def validate_multiclass(predictions: MulticlassPredictionSet) -> tuple[np.ndarray, np.ndarray]:
    """Check classes, labels, probabilities, thresholds and exits; return y (int64) and the
    ``(n, n_exits, K)`` probabilities (float64)."""
    classes = predictions.classes
    k = len(classes)
    if k < 2:
        raise ValueError(f"a multi-class task needs at least 2 classes, got {k}: {list(classes)}")
    if len(set(classes)) != k or any(not str(c) for c in classes):
        raise ValueError(f"class names must be distinct and non-empty: {list(classes)}")
    raw = np.asarray(predictions.y_true)
    if len(raw) == 0:
        raise ValueError("no predictions")
    if raw.dtype.kind not in "iu":
        raise ValueError(f"y_true must be integer class indices in 0..{k - 1}, got dtype {raw.dtype}")
    bad = np.flatnonzero((raw < 0) | (raw >= k))
    if len(bad):
        row = int(bad[0])
        raise ValueError(
            f"y_true row {row}: {int(raw[row])} is not a class index in 0..{k - 1} "
            f"({len(bad)} row(s) outside the declared classes)"
        )
    probs = np.asarray(predictions.exit_probs, dtype=np.float64)
    finite = np.isfinite(probs).all(axis=2)
    if not finite.all():
        row, exit_ = (int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"exit_probs row {row} (exit {exit_}): not a finite number")
    outside = ((probs < 0) | (probs > 1)).any(axis=2)
    if outside.any():
        row, exit_ = (int(i) for i in np.argwhere(outside)[0])
        raise ValueError(f"exit_probs row {row} (exit {exit_}): probabilities must lie in [0, 1]")
    sums = probs.sum(axis=2)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row, exit_ = (int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            f"exit_probs row {row} (exit {exit_}) sums to {sums[row, exit_]:.6g}, not 1 (tolerance "
            f"{SUM_TOLERANCE:g}; {int(off.any(axis=1).sum())} row(s) affected)"
        )
    if predictions.class_thresholds is not None:
        thresholds = np.asarray(predictions.class_thresholds, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(thresholds) | (thresholds <= 0))
        if len(bad):
            raise ValueError(f"class threshold of {classes[int(bad[0])]!r} must be a positive number")
    if predictions.exit_index is not None:
        idx = np.asarray(predictions.exit_index)
        if idx.min() < 0 or idx.max() >= predictions.n_exits:
            raise ValueError("exit_index out of range")
    return raw.astype(np.int64), probs
