"""Multiclass and multilabel objectives: cross-entropy per exit, BCE that ignores unknown findings, the
one-vs-rest pairwise-EO extension, and K-logit exits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from app.modelpkg.task import Task
from app.training.losses import Objective, one_vs_rest_hinge, pairwise_eo_hinge
from app.training.networks import build_network

GROUPS = torch.tensor([0, 0, 1, 1, 0, 1, 0, -1])


def test_multiclass_objective_is_the_weighted_cross_entropy_of_each_exit() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 2, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], dtype=torch.float32)  # batches carry labels as float
    objective = Objective([0.5, 2.0], fairness_weight=1.0, hinge=False, rank_only=False, n_groups=2, kind="multiclass")
    total, terms = objective(logits, y, GROUPS)
    expected = 0.5 * F.cross_entropy(logits[:, 0], y.long()) + 2.0 * F.cross_entropy(logits[:, 1], y.long())
    assert torch.allclose(total, expected)
    assert set(terms) == {"ce", "total"}


def test_multilabel_bce_ignores_unknown_findings() -> None:
    torch.manual_seed(1)
    logits = torch.randn(8, 1, 2, requires_grad=True)
    y = torch.tensor([[1, 0], [0, -1], [1, 1], [-1, 0], [0, 0], [1, -1], [0, 1], [1, 0]], dtype=torch.float32)
    objective = Objective([1.0], fairness_weight=1.0, hinge=False, rank_only=False, n_groups=2, kind="multilabel")
    total, terms = objective(logits, y, GROUPS)
    known = y >= 0
    expected = F.binary_cross_entropy_with_logits(logits[:, 0][known], y[known])
    assert torch.allclose(total, expected) and set(terms) == {"bce", "total"}
    total.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[:, 0][~known] == 0) and torch.all(logits.grad[:, 0][known] != 0)


def test_one_vs_rest_hinge_of_two_classes_averages_the_binary_hinge_of_each_class() -> None:
    """K = 2: softmax p_1 = sigmoid(l_1 − l_0), so class 1's term is the binary hinge on l_1 − l_0 and
    class 0's the binary hinge on l_0 − l_1 with the labels flipped; the extension averages them."""
    logits = torch.tensor([[0.0, 3.0], [0.0, 2.5], [0.0, -1.0], [0.0, -1.5], [0, 0.0], [0, 0.5], [0, -0.5], [0, 0.2]])
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.float32)
    diff = logits[:, 1] - logits[:, 0]
    class_1 = pairwise_eo_hinge(diff, y, GROUPS, 2)
    class_0 = pairwise_eo_hinge(-diff, 1 - y, GROUPS, 2)
    assert class_1 > 0 and class_0 > 0
    got = one_vs_rest_hinge(logits, y, GROUPS, 2, "multiclass")
    assert torch.allclose(got, (class_0 + class_1) / 2, atol=1e-6)


def test_one_finding_hinge_is_the_binary_hinge_on_the_known_samples() -> None:
    logits = torch.tensor([3.0, 2.5, -1.0, -1.5, 0.0, 0.5, -0.5, 0.2, 9.0])
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, -1], dtype=torch.float32)
    groups = torch.cat([GROUPS, torch.tensor([1])])
    got = one_vs_rest_hinge(logits[:, None], y[:, None], groups, 2, "multilabel")
    assert torch.allclose(got, pairwise_eo_hinge(logits[:8], y[:8], GROUPS, 2))


def test_a_class_absent_from_the_batch_takes_no_part_in_the_average() -> None:
    logits = torch.tensor([[0.0, 3.0, 0], [0.0, 2.5, 0], [0.0, -1.0, 0], [0.0, -1.5, 0], [0, 0.0, 0], [0, 0.5, 0]])
    y = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.float32)  # no example of class 2
    groups = GROUPS[:6]
    probs = torch.softmax(logits, dim=1)
    assert torch.allclose(
        one_vs_rest_hinge(logits, y, groups, 2, "multiclass"),
        (_hinge(probs[:, 0], 1 - y, groups) + _hinge(probs[:, 1], y, groups)) / 2,
    )


def _hinge(p: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    return pairwise_eo_hinge(torch.logit(p), y, groups, 2)


def test_every_exit_has_one_logit_per_class() -> None:
    task = Task(kind="multiclass", classes=["a", "b", "c"])
    net = build_network("small", in_channels=3, image_size=16, multi_exit=True, task=task)
    x = torch.zeros(2, 3, 16, 16)
    assert net(x).shape == (2, 5, 3)
    features, logits = net.forward_segment(0, x)
    assert logits.shape == (2, 1, 3) and features.shape[0] == 2
    binary = build_network("small", in_channels=3, image_size=16, multi_exit=True)
    assert binary(x).shape == (2, 5)
