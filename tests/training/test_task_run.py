"""End to end for multiclass and multilabel cohorts: ``run_training`` trains K-logit exits, chooses the
decision and exit θ on validation, and publishes ONNX graphs whose probabilities reproduce the test
predictions handed to the fairness engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import small_config, task_cohort

from app.cohorts.cache import CohortArrays
from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.thresholds import specificity_threshold
from app.modelpkg.folder import read_manifest
from app.modelpkg.onnx_chain import make_session
from app.modelpkg.outputs import exit_confidences, exit_index, probabilities
from app.modelpkg.task import Task, TaskKind
from app.training import TrainingResult, run_training
from app.training.data import Normalizer

MULTICLASS = Task(kind="multiclass", classes=["nevus", "melanoma", "keratosis"])
MULTILABEL = Task(kind="multilabel", classes=["effusion", "edema"])


def images_of(cohort: CohortArrays, index: np.ndarray) -> np.ndarray:
    pixels = torch.from_numpy(np.asarray(cohort.images[index])).permute(0, 3, 1, 2)
    return Normalizer(cohort.channels, torch.device("cpu"))(pixels).contiguous().numpy()


def onnx_probs(result: TrainingResult, cohort: CohortArrays) -> np.ndarray:
    """The published full graph's probabilities on the test split."""
    manifest = read_manifest(result.model_path)
    session = make_session((result.model_path / manifest.graphs.full.file).read_bytes())
    (logits,) = session.run(None, {"image": images_of(cohort, cohort.indices("test"))})
    return probabilities(manifest.task.kind, logits)


def assert_same_exits(kind: TaskKind, onnx: np.ndarray, taken: np.ndarray, thresholds: list[float | None]) -> None:
    """The ONNX probabilities send every sample to the exit it took in training's numbers (samples
    whose confidence lies within 1e-4 of θ are left out, as in the export's parity check)."""
    theta = np.array([np.inf if t is None else t for t in thresholds[:-1]])
    clear = ~(np.abs(exit_confidences(kind, onnx)[:, :-1] - theta) <= 1e-4).any(axis=1)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(exit_index(kind, onnx, thresholds)[clear], taken[clear])


@pytest.fixture(scope="module")
def multiclass_cohort() -> CohortArrays:
    return task_cohort(MULTICLASS)


@pytest.fixture(scope="module")
def multiclass(multiclass_cohort: CohortArrays, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("mc")
    config = small_config(
        method="fair_multi_exit_pairwise_eo",
        epochs=1,
        class_balanced=True,
        class_thresholds=True,
        exit_threshold_grid=[0.5, 0.7, 0.9],
    )
    return run_training(multiclass_cohort, config, root / "work", root / "models", "mc1")


@pytest.fixture(scope="module")
def multilabel_cohort() -> CohortArrays:
    return task_cohort(MULTILABEL)


@pytest.fixture(scope="module")
def multilabel(multilabel_cohort: CohortArrays, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("ml")
    config = small_config(
        method="fair_multi_exit_pairwise_eo",
        epochs=1,
        threshold_rule="target_specificity",
        target_specificity=0.8,
        exit_threshold_grid=[0.5, 0.7],
    )
    return run_training(multilabel_cohort, config, root / "work", root / "models", "ml1")


def test_multiclass_manifest_reads_back_with_task_outputs_and_decision(multiclass: TrainingResult) -> None:
    manifest = read_manifest(multiclass.model_path)
    assert manifest == multiclass.manifest
    assert manifest.task == MULTICLASS
    assert (manifest.output.width, manifest.output.probability, manifest.output.positive_label) == (
        3,
        "softmax(logits)",
        None,
    )
    assert manifest.operating_threshold is None and manifest.operating_threshold_rule is None
    assert manifest.decision is not None and manifest.decision.rule == "argmax of p / class threshold"
    assert manifest.decision.thresholds is not None and len(manifest.decision.thresholds) == 3
    assert manifest.exit_policy is not None and manifest.exit_policy.confidence == "max softmax"
    candidates = manifest.exit_policy.candidates
    assert len(candidates) == 4 and all(c.macro_f1 is not None for c in candidates)
    training = manifest.training
    assert training is not None and training.pairwise_eo_extension is not None
    assert "one-vs-rest per class" in training.pairwise_eo_extension
    assert "macro one-vs-rest AUC" in training.selection
    assert training.validation.macro_f1 is not None and training.validation.accuracy is not None
    assert training.validation.tpr is not None and training.validation.fpr is not None
    assert all(set(h.losses) == {"ce", "hinge", "total"} for h in training.history)
    assert all(h.val_macro_f1 is not None for h in training.history)
    assert "linear(32->3)" in (manifest.architecture.ic_head or "")


def test_multiclass_test_predictions_are_the_onnx_graphs_numbers(
    multiclass: TrainingResult, multiclass_cohort: CohortArrays
) -> None:
    predictions = multiclass.test_predictions
    assert isinstance(predictions, MulticlassPredictionSet)
    test = multiclass_cohort.indices("test")
    assert predictions.exit_probs.shape == (len(test), 5, 3)
    np.testing.assert_allclose(predictions.exit_probs.sum(axis=2), 1.0, atol=1e-6)
    np.testing.assert_array_equal(predictions.y_true, multiclass_cohort.labels[test])
    assert predictions.classes == tuple(MULTICLASS.classes)
    assert multiclass.decision is not None
    np.testing.assert_array_equal(predictions.class_thresholds, multiclass.decision.thresholds)
    onnx = onnx_probs(multiclass, multiclass_cohort)
    np.testing.assert_allclose(onnx, predictions.exit_probs, atol=1e-4)
    assert predictions.exit_index is not None
    assert_same_exits("multiclass", onnx, predictions.exit_index, multiclass.exit_thresholds)
    assert predictions.exit_cost is not None and predictions.exit_cost[-1] == 1.0


def test_multilabel_run_has_per_finding_thresholds_and_keeps_unknown_labels(
    multilabel: TrainingResult, multilabel_cohort: CohortArrays
) -> None:
    manifest = read_manifest(multilabel.model_path)
    assert manifest.task == MULTILABEL and manifest.output.probability == "sigmoid(logit) per finding"
    decision = manifest.decision
    assert decision is not None and decision.rule == "per-finding threshold"
    assert decision.thresholds is not None and len(decision.thresholds) == 2
    assert decision.threshold_rules is not None
    assert [r.rule for r in decision.threshold_rules] == ["target_specificity"] * 2
    assert manifest.exit_policy is not None
    assert manifest.exit_policy.confidence == "min over findings of max(p, 1 - p)"
    assert manifest.training is not None and "per finding" in (manifest.training.pairwise_eo_extension or "")
    predictions = multilabel.test_predictions
    assert isinstance(predictions, MultilabelPredictionSet)
    test = multilabel_cohort.indices("test")
    assert (predictions.y_true == -1).any()
    np.testing.assert_array_equal(predictions.y_true, multilabel_cohort.labels[test])
    np.testing.assert_array_equal(predictions.thresholds, decision.thresholds)
    assert predictions.exit_scores.shape == (len(test), 5, 2) and predictions.exit_index is not None
    onnx = onnx_probs(multilabel, multilabel_cohort)
    np.testing.assert_allclose(onnx, predictions.exit_scores, atol=1e-4)
    assert_same_exits("multilabel", onnx, predictions.exit_index, multilabel.exit_thresholds)
    assert [c.macro_f1 for c in manifest.exit_policy.candidates] == [None] * 3


def test_multilabel_threshold_is_the_rule_on_known_validation_labels(
    multilabel: TrainingResult, multilabel_cohort: CohortArrays
) -> None:
    """Each finding's threshold is the engine's target-specificity threshold on the validation samples
    whose label is known (the unknown ones take no part), up to the graphs' float32 rounding."""
    assert multilabel.decision is not None and multilabel.decision.thresholds is not None
    val = multilabel_cohort.indices("val")
    manifest = read_manifest(multilabel.model_path)
    session = make_session((multilabel.model_path / manifest.graphs.full.file).read_bytes())
    (logits,) = session.run(None, {"image": images_of(multilabel_cohort, val)})
    probs = probabilities("multilabel", logits)[:, -1]
    for f, threshold in enumerate(multilabel.decision.thresholds):
        y = multilabel_cohort.labels[val, f]
        known = y >= 0
        assert not known.all()
        expected = specificity_threshold(y[known], probs[known, f].astype(np.float64), 0.8)
        assert threshold == pytest.approx(expected, abs=1e-4)
