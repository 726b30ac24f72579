"""What a multiclass or multilabel model is selected and frozen with on validation: task metrics, the
exit θ criterion, per-class thresholds, per-finding thresholds, and the task's exit rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score
from training_helpers import small_config

from app.fairness.engine.thresholds import exit_index as engine_exit_index
from app.fairness.engine.thresholds import youden_threshold
from app.modelpkg.outputs import exit_index, probabilities
from app.modelpkg.task import Task, multiclass_decision
from app.training.decisions import CLASS_THRESHOLD_GRID, fit_class_thresholds, multilabel_decision_record
from app.training.groups import GroupEncoding
from app.training.task_metrics import macro_f1, multiclass_eopp1, score_exit
from app.training.thresholds import choose_exit_thresholds

MULTICLASS = Task(kind="multiclass", classes=["a", "b", "c"])


def noisy_probs(y: np.ndarray, k: int, signal: float, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(0, 1, (len(y), k))
    logits[np.arange(len(y)), y] += signal
    return probabilities("multiclass", logits)


def test_macro_f1_and_auc_are_sklearns_over_the_classes_present() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(4, 300, p=[0.5, 0.3, 0.2, 0.0])  # class 3 never occurs
    probs = noisy_probs(y, 4, 1.0, rng)
    pred = probs.argmax(axis=1)
    pred[:5] = 3  # predicted but absent: counts against the precision of nothing
    present = sorted(set(y))
    assert macro_f1(y, pred, 4) == pytest.approx(f1_score(y, pred, labels=present, average="macro", zero_division=0))
    task = Task(kind="multiclass", classes=["a", "b", "c", "d"])
    scores = score_exit(task, y, probs, np.zeros(len(y), dtype=np.int64), 1)
    expected = np.mean([roc_auc_score(y == c, probs[:, c]) for c in present])
    assert scores.auc == pytest.approx(expected)


def test_multiclass_eopp1_is_the_mean_per_class_tpr_spread_over_groups() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 0, 1, 1, 1, 0, 2, 0])
    codes = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, -1])
    # class 0: group 0 TPR 1, group 1 TPR 0.5; class 1: 1 vs 0.5; class 2: only group 0 -> left out
    assert multiclass_eopp1(y, pred, codes, 2, 3) == pytest.approx(0.5)
    assert np.isnan(multiclass_eopp1(y, pred, np.zeros(10, dtype=np.int64), 1, 3))


def test_class_thresholds_raise_validation_macro_f1_and_equal_thresholds_are_argmax() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(3, 600, p=[0.8, 0.15, 0.05])
    probs = noisy_probs(y, 3, 1.2, rng)
    probs[:, 2] *= 0.3  # a class whose probabilities are off scale: argmax is not the best rule
    probs /= probs.sum(axis=1, keepdims=True)
    thresholds = fit_class_thresholds(y, probs)
    argmax = macro_f1(y, probs.argmax(axis=1), 3)
    fitted = macro_f1(y, multiclass_decision(probs, thresholds), 3)
    assert fitted > argmax + 0.02
    assert set(thresholds.tolist()) <= set(CLASS_THRESHOLD_GRID)
    np.testing.assert_array_equal(multiclass_decision(probs, np.full(3, 0.4)), probs.argmax(axis=1))


def test_multilabel_thresholds_are_the_rule_per_finding_on_known_labels() -> None:
    rng = np.random.default_rng(2)
    task = Task(kind="multilabel", classes=["x", "y"])
    y = rng.choice([-1, 0, 1], (200, 2), p=[0.2, 0.5, 0.3])
    probs = np.clip(0.5 * y + rng.normal(0.3, 0.2, y.shape), 0, 1)
    groups = GroupEncoding(("sex",), rng.choice(2, 200), ("sex=F", "sex=M"))
    decision = multilabel_decision_record(small_config(), task, y, probs, groups)
    assert decision.rule == "per-finding threshold" and decision.threshold_rules is not None
    for f in range(2):
        known = y[:, f] >= 0
        assert decision.thresholds is not None
        assert decision.thresholds[f] == youden_threshold(y[known, f], probs[known, f])
        assert decision.threshold_rules[f].operating_point is not None


def test_exit_rule_per_task_and_binary_is_the_engines() -> None:
    rng = np.random.default_rng(3)
    binary = rng.random((50, 5))
    thresholds = [0.8, None, 0.7, 0.9, None]
    np.testing.assert_array_equal(exit_index("binary", binary, thresholds), engine_exit_index(binary, thresholds))
    multiclass = np.array([[[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], [[0.85, 0.1, 0.05], [0.4, 0.3, 0.3]]])
    assert exit_index("multiclass", multiclass, [0.8, None]).tolist() == [1, 0]
    # a multilabel sample leaves only when every finding is sure
    multilabel = np.array([[[0.95, 0.5], [0.9, 0.9]], [[0.97, 0.02], [0.5, 0.5]]])
    assert exit_index("multilabel", multilabel, [0.9, None]).tolist() == [1, 0]


def test_multiclass_exit_choice_keeps_macro_f1_and_minimises_eopp1() -> None:
    rng = np.random.default_rng(4)
    n = 400
    y = rng.choice(3, n)
    codes = rng.choice(2, n)
    probs = np.stack([noisy_probs(y, 3, s, rng) for s in (0.5, 1.0, 1.5, 2.5, 3.0)], axis=1)
    costs = [0.2, 0.4, 0.6, 0.8, 1.0]
    choice = choose_exit_thresholds(
        y, probs, codes, 2, costs, grid=[0.5, 0.7, 0.9], criterion="min_pfd", tolerance=0.05, task=MULTICLASS
    )
    final = score_exit(MULTICLASS, y, probs[:, -1], codes, 2)
    assert final.macro_f1 is not None
    assert len(choice.candidates) == 4
    for candidate in choice.candidates:
        idx = exit_index("multiclass", probs, [candidate.theta] * 4 + [None])
        served = probs[np.arange(n), idx]
        expected = score_exit(MULTICLASS, y, served, codes, 2)
        assert (candidate.macro_f1, candidate.eopp1, candidate.auc) == (expected.macro_f1, expected.eopp1, expected.auc)
    eligible = [c for c in choice.candidates if c.theta is None or c.macro_f1 >= final.macro_f1 - 0.05]  # type: ignore[operator]
    assert choice.chosen.eopp1 == min(c.eopp1 for c in eligible)  # type: ignore[type-var]
