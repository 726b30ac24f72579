"""Multiclass and multilabel cohorts that cannot train, and options of another task, are refused up
front with the class, row or field named."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from training_helpers import MakeCohort, task_cohort

from app.cohorts.cache import CohortArrays
from app.core.errors import InputError
from app.modelpkg.task import Task
from app.training.validation import validate_training_config

BASE: dict[str, Any] = {"method": "erm", "sensitive_attributes": ["sex"], "backbone": "small", "batch_size": 32}
MULTICLASS = Task(kind="multiclass", classes=["nevus", "melanoma", "keratosis"])
MULTILABEL = Task(kind="multilabel", classes=["effusion", "edema"])


def problems(config: dict[str, Any], cohort: CohortArrays) -> list[dict[str, Any]]:
    with pytest.raises(InputError) as err:
        validate_training_config(config, cohort)
    assert err.value.status == 422
    return err.value.errors


def with_labels(cohort: CohortArrays, labels: np.ndarray) -> CohortArrays:
    return dataclasses.replace(cohort, labels=labels)


def test_a_class_without_a_training_example_is_named() -> None:
    cohort = task_cohort(MULTICLASS, images=False)
    labels = cohort.labels.copy()
    labels[(cohort.split == "train") & (labels == 1)] = 0
    assert problems(BASE, with_labels(cohort, labels)) == [
        {"field": "cohort", "message": "class 'melanoma' has no example in the training split"}
    ]


def test_a_class_missing_from_a_folds_training_part_is_named() -> None:
    cohort = task_cohort(MULTICLASS, n=200, images=False)
    labels = cohort.labels.copy()
    labels[:] = np.where(labels == 2, 0, labels)
    labels[3] = 2  # one patient of class 2: folds without it in training cannot train its head
    errors = problems({**BASE, "fold_plan": {"folds": 2, "fold": 0}}, with_labels(cohort, labels))
    assert errors[0]["field"] == "folds" and "the smallest, label=keratosis, has 1" in errors[0]["message"]


def test_a_label_outside_the_declared_classes_names_the_row() -> None:
    cohort = task_cohort(MULTICLASS, images=False)
    labels = cohort.labels.copy()
    labels[7] = 3
    assert problems(BASE, with_labels(cohort, labels)) == [
        {"field": "cohort", "message": "item item0007 (row 7) has label 3, outside [0, 1, 2]"}
    ]


def test_a_multilabel_row_with_every_finding_unknown_is_named() -> None:
    cohort = task_cohort(MULTILABEL, images=False)
    labels = cohort.labels.copy()
    labels[5] = -1
    assert problems(BASE, with_labels(cohort, labels)) == [
        {"field": "cohort", "message": "item item0005 (row 5) and 0 more have every finding unknown"}
    ]


def test_a_finding_without_training_positives_is_named() -> None:
    cohort = task_cohort(MULTILABEL, images=False)
    labels = cohort.labels.copy()
    labels[(cohort.split == "train")[:, None] & (labels == 1) & (np.arange(2) == 1)[None, :]] = 0
    assert problems(BASE, with_labels(cohort, labels)) == [
        {"field": "cohort", "message": "finding 'edema' has no positive in the training split"}
    ]


def test_options_of_another_task_are_refused_with_their_field(make_cohort: MakeCohort) -> None:
    binary = make_cohort(n=200)
    errors = problems({**BASE, "class_balanced": True, "class_thresholds": True}, binary)
    assert [e["field"] for e in errors] == ["class_balanced", "class_thresholds"]
    assert "multiclass cohorts only; this cohort's task is binary" in errors[0]["message"]
    multiclass = task_cohort(MULTICLASS, images=False)
    config = {**BASE, "threshold_rule": "target_specificity", "target_specificity": 0.9}
    assert [e["field"] for e in problems(config, multiclass)] == ["threshold_rule"]
    constrained = {**BASE, "threshold_rule": "constrained", "threshold_constraint": {"fpr_band": 0.1}}
    assert [e["field"] for e in problems(constrained, task_cohort(MULTILABEL, images=False))] == [
        "threshold_constraint"
    ]


def test_a_valid_multiclass_config_passes() -> None:
    config = validate_training_config({**BASE, "class_balanced": True}, task_cohort(MULTICLASS, images=False))
    assert config.class_balanced and config.image_size == 16


def test_one_class_is_no_multiclass_task() -> None:
    with pytest.raises(ValueError, match="needs 2 to"):
        Task(kind="multiclass", classes=["only"])
