"""Batch strata for multiclass and multilabel cohorts, and class-balanced sampling."""

from __future__ import annotations

import numpy as np

from app.modelpkg.task import Task
from app.training.data import stratified_batches
from app.training.strata import prioritised_labels, stratum_labels

MULTICLASS = Task(kind="multiclass", classes=["a", "b", "c"])


def test_class_balanced_batches_draw_every_class_equally_often() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    labels = rng.choice(3, n, p=[0.8, 0.15, 0.05])
    codes = rng.choice(2, n)
    index = np.arange(n)
    plain = np.concatenate(stratified_batches(index, labels, codes, 60, np.random.default_rng(1)))
    balanced = np.concatenate(
        stratified_batches(
            index, labels, codes, 60, np.random.default_rng(1), prioritised=(0, 1, 2), class_balanced=True
        )
    )
    np.testing.assert_allclose(np.bincount(labels[plain]) / len(plain), [0.8, 0.15, 0.05], atol=0.02)
    np.testing.assert_allclose(np.bincount(labels[balanced]) / len(balanced), [1 / 3] * 3, atol=0.02)
    # within a class the groups keep their proportions
    rare = balanced[labels[balanced] == 2]
    share = (codes[index[labels == 2]] == 1).mean()
    assert abs((codes[rare] == 1).mean() - share) < 0.1


def test_multilabel_stratum_is_the_first_present_finding() -> None:
    task = Task(kind="multilabel", classes=["x", "y", "z"])
    labels = np.array([[0, 1, 1], [-1, 0, 1], [0, 0, 0], [-1, -1, 0], [1, 0, -1]])
    assert stratum_labels(labels, task).tolist() == [1, 2, 3, 3, 0]
    assert prioritised_labels(task) == (0, 1, 2)
    assert prioritised_labels(MULTICLASS) == (0, 1, 2)
    assert prioritised_labels(Task()) == (1,)


def test_every_batch_holds_every_class_of_every_group() -> None:
    rng = np.random.default_rng(2)
    n = 1200
    labels = rng.choice(3, n, p=[0.9, 0.07, 0.03])
    codes = rng.choice(2, n)
    batches = stratified_batches(np.arange(n), labels, codes, 16, np.random.default_rng(3), prioritised=(0, 1, 2))
    for batch in batches:
        assert {(int(y), int(g)) for y, g in zip(labels[batch], codes[batch], strict=True)} == {
            (y, g) for y in range(3) for g in range(2)
        }
