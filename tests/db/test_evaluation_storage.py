"""Stored predictions come back exactly, missing group values included."""

from __future__ import annotations

import numpy as np

from app.fairness.engine.inputs import PredictionSet
from app.fairness.storage import load_predictions, save_predictions


def obj(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def test_predictions_round_trip(tmp_path) -> None:
    original = PredictionSet(
        y_true=np.array([0, 1, 1, 0]),
        exit_scores=np.array([[0.1, 0.2], [0.9, 0.8], [0.6, 0.7], [0.3, 0.4]]),
        groups={"sex": obj(["female", None, "male", ""]), "site": obj(["a", "b", None, "a"])},
        threshold=0.42,
        exit_index=np.array([0, 1, 1, 0]),
        exit_cost=np.array([0.3, 1.0]),
        sample_ids=obj(["s1", "s2", "s3", "s4"]),
    )
    save_predictions(tmp_path, original)
    loaded = load_predictions(tmp_path)
    assert np.array_equal(loaded.y_true, original.y_true)
    assert np.array_equal(loaded.exit_scores, original.exit_scores)
    assert loaded.threshold == 0.42
    assert list(loaded.groups["sex"]) == ["female", None, "male", ""]
    assert list(loaded.groups["site"]) == ["a", "b", None, "a"]
    assert list(loaded.sample_ids) == ["s1", "s2", "s3", "s4"]
    assert np.array_equal(loaded.exit_index, original.exit_index)
