"""RBF kernels and class conditioning shared by the feature terms (HSIC, MFD)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from app.modelpkg.task import TaskKind


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``(len(a), len(b))`` squared Euclidean distances, clamped at 0 against rounding."""
    return (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T).clamp(min=0)


def class_masks(y: Tensor, kind: TaskKind, width: int) -> Iterator[Tensor]:
    """One boolean mask per class: binary labels 0 and 1, multiclass each class index. Multilabel
    tasks have no classes to condition on (the feature terms refuse them before training)."""
    if kind == "multilabel":
        raise ValueError("class-conditional feature terms are not defined for multilabel tasks")
    labels = y.long()
    for c in range(2 if kind == "binary" else width):
        yield labels == c
