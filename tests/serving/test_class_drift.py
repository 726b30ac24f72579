"""Drift compares like with like: the audit's score per sample is what a served row stores as
``probability`` for the model's task."""

from __future__ import annotations

import numpy as np

from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.serving.drift import served_scores

GROUPS = {"sex": np.array(["f", "m", "f"], dtype=object)}


def test_served_scores_per_task():
    binary = PredictionSet(
        y_true=np.array([1, 0, 1]),
        exit_scores=np.array([[0.9, 0.8], [0.3, 0.2], [0.6, 0.7]]),
        groups=GROUPS,
        threshold=0.5,
        exit_index=np.array([0, 1, 1]),
    )
    np.testing.assert_array_equal(served_scores(binary), [0.9, 0.2, 0.7])
    probs = np.array([[[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]], [[0.2, 0.2, 0.6], [0.1, 0.1, 0.8]], [[0.5, 0.4, 0.1]] * 2])
    multiclass = MulticlassPredictionSet(
        y_true=np.array([0, 2, 1]),
        exit_probs=probs,
        classes=("a", "b", "c"),
        groups=GROUPS,
        class_thresholds=np.array([0.8, 0.2, 0.3]),  # b wins wherever p_b / 0.2 beats the others
        exit_index=np.array([1, 0, 0]),
    )
    np.testing.assert_array_equal(served_scores(multiclass), [0.3, 0.6, 0.4])  # the predicted class's
    multilabel = MultilabelPredictionSet(
        y_true=np.array([[1, -1], [0, 0], [1, 1]]),
        exit_scores=np.array([[[0.1, 0.7], [0.2, 0.4]], [[0.3, 0.1], [0.5, 0.2]], [[0.9, 0.95], [0.8, 0.6]]]),
        findings=("x", "y"),
        groups=GROUPS,
        thresholds=np.array([0.5, 0.5]),
    )
    np.testing.assert_array_equal(served_scores(multilabel), [0.4, 0.5, 0.8])  # the final exit's largest
