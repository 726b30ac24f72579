"""Stored predictions come back exactly, missing group values included."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
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
    assert loaded.threshold == 0.42 and isinstance(loaded.threshold, float)
    assert list(loaded.groups["sex"]) == ["female", None, "male", ""]
    assert list(loaded.groups["site"]) == ["a", "b", None, "a"]
    assert list(loaded.sample_ids) == ["s1", "s2", "s3", "s4"]
    assert np.array_equal(loaded.exit_index, original.exit_index)


def test_per_sample_thresholds_round_trip(tmp_path) -> None:
    original = PredictionSet(
        y_true=np.array([0, 1, 1]),
        exit_scores=np.array([[0.1], [0.9], [0.6]]),
        groups={},
        threshold=np.array([0.4, 0.55, 0.4]),
        folds=obj(["s0/f0", "s0/f1", "s0/f0"]),
    )
    save_predictions(tmp_path, original)
    loaded = load_predictions(tmp_path)
    assert loaded.per_sample_threshold and np.array_equal(loaded.threshold, [0.4, 0.55, 0.4])


def test_clusters_and_folds_round_trip_and_are_optional(tmp_path) -> None:
    base = {"y_true": np.array([0, 1, 1]), "exit_scores": np.array([[0.1], [0.9], [0.6]]), "threshold": 0.5}
    with_both = PredictionSet(
        **base, groups={}, clusters=obj(["p1", "p1", "p2"]), folds=obj(["s0/f0", "s0/f1", "s1/f0"])
    )
    save_predictions(tmp_path / "new", with_both)
    loaded = load_predictions(tmp_path / "new")
    assert list(loaded.clusters) == ["p1", "p1", "p2"] and list(loaded.folds) == ["s0/f0", "s0/f1", "s1/f0"]

    # a file written before clusters and folds existed (no such members) still loads
    np.savez_compressed(
        tmp_path / "predictions.npz", threshold=np.asarray(0.5), **{k: v for k, v in base.items() if k != "threshold"}
    )
    old = load_predictions(tmp_path)
    assert old.clusters is None and old.folds is None and old.sample_ids is None
    assert old.threshold == 0.5 and not old.per_sample_threshold
    assert isinstance(old, PredictionSet), "a file without a task member is binary"


def test_multiclass_predictions_round_trip(tmp_path) -> None:
    probs = np.array([[[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]], [[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]])
    original = MulticlassPredictionSet(
        y_true=np.array([0, 2]),
        exit_probs=np.asfortranarray(probs),
        classes=("benign", "melanoma", "nevus"),
        groups={"skin": obj(["I", None])},
        class_thresholds=np.array([0.5, 0.2, 0.5]),
        exit_index=np.array([0, 1]),
        exit_cost=np.array([0.4, 1.0]),
        sample_ids=obj(["a", "b"]),
        folds=obj(["s0/f0", "s0/f1"]),
    )
    save_predictions(tmp_path, original)
    loaded = load_predictions(tmp_path)
    assert isinstance(loaded, MulticlassPredictionSet)
    assert loaded.classes == original.classes and np.array_equal(loaded.exit_probs, probs)
    assert np.array_equal(loaded.y_true, [0, 2]) and np.array_equal(loaded.class_thresholds, [0.5, 0.2, 0.5])
    assert list(loaded.groups["skin"]) == ["I", None] and list(loaded.folds) == ["s0/f0", "s0/f1"]
    assert np.array_equal(loaded.exit_index, [0, 1])

    argmax = dataclasses.replace(original, class_thresholds=None)
    save_predictions(tmp_path / "argmax", argmax)
    assert load_predictions(tmp_path / "argmax").class_thresholds is None


def test_multilabel_predictions_round_trip_with_unknowns_and_per_sample_thresholds(tmp_path) -> None:
    original = MultilabelPredictionSet(
        y_true=np.array([[1, -1], [0, 1], [-1, 0]]),
        exit_scores=np.array([[[0.9, 0.2]], [[0.1, 0.7]], [[0.4, 0.3]]]),
        findings=("edema", "effusion"),
        groups={"sex": obj(["F", "M", "F"])},
        thresholds=np.array([[0.5, 0.4], [0.5, 0.4], [0.6, 0.3]]),
        clusters=obj(["p1", "p1", "p2"]),
    )
    save_predictions(tmp_path, original)
    loaded = load_predictions(tmp_path)
    assert isinstance(loaded, MultilabelPredictionSet)
    assert loaded.findings == ("edema", "effusion")
    assert np.array_equal(loaded.y_true, original.y_true) and loaded.y_true.dtype == np.int64
    assert np.array_equal(loaded.exit_scores, original.exit_scores)
    assert np.array_equal(loaded.thresholds, original.thresholds) and list(loaded.clusters) == ["p1", "p1", "p2"]
    assert loaded.exit_index is None and loaded.sample_ids is None


def test_a_file_naming_an_unknown_task_is_refused(tmp_path) -> None:
    np.savez_compressed(tmp_path / "predictions.npz", task=np.asarray("regression"), y_true=np.array([0.5]))
    with pytest.raises(ValueError, match="unknown task 'regression'"):
        load_predictions(tmp_path)
