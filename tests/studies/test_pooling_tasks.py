"""Pooling multiclass and multilabel fold predictions: one set per config with each sample's own fold,
per-finding thresholds per sample, one multiclass decision rule; folds of different tasks are refused.
The pooled multiclass set is evaluated by the engine like any other."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.fairness.engine.report import build_report
from app.studies.pooling import FoldPredictions, decision_thresholds, pool


def obj(values) -> np.ndarray:
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def classes_fold(seed: int, start: int, n: int = 150, thresholds=None) -> MulticlassPredictionSet:
    rng = np.random.default_rng(seed * 100 + start)
    y = rng.integers(0, 3, n)
    skin = rng.choice(["light", "dark"], n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += np.where(skin == "dark", 0.5, 2.0)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return MulticlassPredictionSet(
        y_true=y,
        exit_probs=probs[:, None, :],
        classes=("a", "b", "c"),
        groups={"skin": obj(skin)},
        class_thresholds=thresholds,
        sample_ids=obj(f"i{start + i}" for i in range(n)),
    )


def findings_fold(start: int, thresholds: list[float], n: int = 4) -> MultilabelPredictionSet:
    return MultilabelPredictionSet(
        y_true=np.tile([[1, -1], [0, 1]], (n // 2, 1)),
        exit_scores=np.full((n, 1, 2), 0.5),
        findings=("edema", "effusion"),
        groups={"sex": obj(["F", "M"] * (n // 2))},
        thresholds=np.array(thresholds),
        sample_ids=obj(f"i{start + i}" for i in range(n)),
    )


def test_pooled_multiclass_folds_keep_every_probability_and_are_evaluated():
    parts = [FoldPredictions(0, 0, classes_fold(0, 0)), FoldPredictions(0, 1, classes_fold(0, 150))]
    pooled = pool(parts, patient_of={"i0": "p1", "i1": "p1"})
    assert isinstance(pooled, MulticlassPredictionSet) and pooled.classes == ("a", "b", "c")
    assert np.array_equal(pooled.exit_probs, np.concatenate([p.predictions.exit_probs for p in parts]))
    assert list(pooled.sample_ids[:2]) == ["s0/i0", "s0/i1"] and list(pooled.clusters[:3]) == ["p1", "p1", "i2"]
    assert set(pooled.folds) == {"s0/f0", "s0/f1"} and pooled.class_thresholds is None
    report = build_report(pooled, attributes=["skin"], n_boot=20, seed=0, min_count=5)
    assert report["task"] == "multiclass" and report["population"]["n"] == 300
    skin = next(g for g in report["evaluations"][-1]["groupings"] if g["attribute"] == "skin")
    assert skin["gaps"]["eopp1"]["value"] > 0.1, "the planted gap survives pooling"
    assert decision_thresholds(parts[0].predictions) is None


def test_multiclass_folds_with_different_class_thresholds_are_refused():
    same = np.array([0.5, 0.3, 0.5])
    agreeing = [FoldPredictions(0, f, classes_fold(0, 150 * f, thresholds=same)) for f in range(2)]
    assert np.array_equal(pool(agreeing, {}).class_thresholds, same)
    other = FoldPredictions(1, 1, classes_fold(1, 150, thresholds=np.array([0.5, 0.5, 0.5])))
    with pytest.raises(ValueError, match="fold s1/f1 decides with other class thresholds than fold s0/f0"):
        pool([agreeing[0], other], {})


def test_pooled_multilabel_folds_carry_each_fold_models_thresholds_per_sample():
    parts = [FoldPredictions(0, 0, findings_fold(0, [0.3, 0.6])), FoldPredictions(0, 1, findings_fold(4, [0.4, 0.5]))]
    pooled = pool(parts, {})
    assert isinstance(pooled, MultilabelPredictionSet) and pooled.findings == ("edema", "effusion")
    assert pooled.thresholds.shape == (8, 2)
    assert pooled.thresholds[:, 0].tolist() == [0.3] * 4 + [0.4] * 4
    assert pooled.y_true[:, 1].tolist() == [-1, 1] * 4, "unknown labels stay unknown"
    assert decision_thresholds(parts[1].predictions) == [0.4, 0.5]


def test_folds_of_different_tasks_or_classes_are_refused():
    binary = PredictionSet(
        y_true=np.array([0, 1]), exit_scores=np.array([[0.2], [0.7]]), groups={"skin": obj(["a", "b"])}, threshold=0.5
    )
    classes = FoldPredictions(0, 0, classes_fold(0, 0, n=10))
    with pytest.raises(ValueError, match=r"fold s0/f0 is multiclass \(3 classes: a, b, c\) but fold s0/f1 is binary"):
        pool([classes, FoldPredictions(0, 1, binary)], {})
    renamed = dataclasses.replace(classes_fold(0, 10, n=10), classes=("a", "b", "x"))
    with pytest.raises(ValueError, match="3 classes: a, b, x"):
        pool([classes, FoldPredictions(0, 1, renamed)], {})
