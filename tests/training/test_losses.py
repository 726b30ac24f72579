"""The pairwise-EO hinge (docs/methods.md §1) and the per-exit weighting of the objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from app.training.losses import MARGIN, Objective, pairwise_eo_hinge, worst_group
from app.training.networks import build_network

# positives of group 0 rank well, positives of group 1 badly; negatives in between; one missing-group negative
LOGITS = [3.0, 2.5, -1.0, -1.5, 0.0, 0.5, -0.5, 0.2]
LABELS = [1, 1, 1, 1, 0, 0, 0, 0]
GROUPS = [0, 0, 1, 1, 0, 1, 0, -1]


def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(LOGITS, requires_grad=True),
        torch.tensor(LABELS, dtype=torch.float32),
        torch.tensor(GROUPS),
    )


def positive_fraction(s: torch.Tensor, y: torch.Tensor, g: torch.Tensor, k: int) -> float:
    sp, sn = s[(y == 1) & (g == k)], s[y == 0]
    return float(((sp[:, None] > sn[None, :]).float() + 0.5 * (sp[:, None] == sn[None, :]).float()).mean())


def test_worst_group_is_the_lowest_pf_over_all_batch_negatives() -> None:
    logits, y, g = tensors()
    s = torch.sigmoid(logits)
    worst = worst_group(s, y, g, n_groups=2)
    assert int(worst.group) == 1
    assert bool(worst.valid)
    expected = [positive_fraction(s, y, g, k) for k in (0, 1)]
    assert torch.allclose(worst.pf, torch.tensor(expected))


def test_hinge_is_the_mean_over_worst_group_positives_and_every_negative() -> None:
    logits, y, g = tensors()
    s = torch.sigmoid(logits)
    d = s[(y == 1) & (g == 1)][:, None] - s[y == 0][None, :]
    expected = F.relu(MARGIN - d).mean()
    assert torch.allclose(pairwise_eo_hinge(logits, y, g, n_groups=2), expected)


def test_one_step_raises_the_worst_groups_positives_against_negatives() -> None:
    logits, y, g = tensors()
    before = torch.sigmoid(logits.detach())
    pairwise_eo_hinge(logits, y, g, n_groups=2).backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[:2] == 0)  # the better group's positives are not pushed
    with torch.no_grad():
        after = torch.sigmoid(logits - 5.0 * logits.grad)
    gap_before = before[2:4].mean() - before[4:].mean()
    gap_after = after[2:4].mean() - after[4:].mean()
    assert gap_after > gap_before
    assert positive_fraction(after, y, g, 1) > positive_fraction(before, y, g, 1)


def test_hinge_skipped_without_both_classes_or_with_a_single_group() -> None:
    logits, y, g = tensors()
    for labels, groups in (
        (torch.ones(8), g),  # no negative
        (torch.zeros(8), g),  # no positive
        (y, torch.zeros(8, dtype=torch.long)),  # one group only (the reference code's no-op check)
    ):
        logits.grad = None
        loss = pairwise_eo_hinge(logits, labels, groups, n_groups=2)
        loss.backward()
        assert float(loss.detach()) == 0.0
        assert logits.grad is not None and torch.all(logits.grad == 0)


def test_every_group_gets_the_same_target_and_margin() -> None:
    """The reference code's target 2 for one group halves its margin; here each group is treated alike."""
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    g = torch.tensor([0, 1, 0, 1])
    losses = []
    for worst in (0, 1):
        logits = torch.zeros(4)
        logits[1 - worst] = 2.0  # the other group's positive ranks well
        losses.append(float(pairwise_eo_hinge(logits, y, g, n_groups=2)))
    assert losses[0] == pytest.approx(MARGIN) and losses[1] == pytest.approx(MARGIN)


def test_objective_applies_exit_weights_and_skips_zero_weight_heads() -> None:
    torch.manual_seed(0)
    net = build_network("small", in_channels=3, image_size=32, multi_exit=True)
    x = torch.randn(16, 3, 32, 32)
    y = (torch.arange(16) % 2).float()
    g = torch.arange(16) % 3 - (torch.arange(16) == 0).long()  # groups 0..2, one missing
    weights = [0.5, 0.0, 1.0, 2.0, 1.5]
    objective = Objective(weights, fairness_weight=0.7, hinge=True, rank_only=False, n_groups=3)
    logits = net(x)
    loss, terms = objective(logits, y, g)
    bce = [F.binary_cross_entropy_with_logits(logits[:, i], y) for i in range(5)]
    hinge = [pairwise_eo_hinge(logits[:, i], y, g, 3) for i in range(5)]
    expected = torch.stack([w * (b + 0.7 * h) for w, b, h in zip(weights, bce, hinge, strict=True)]).sum()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(terms["bce"] + terms["hinge"], terms["total"], atol=1e-6)
    loss.backward()
    zero_head = list(net.heads[1].parameters())
    assert all(p.grad is None or torch.all(p.grad == 0) for p in zero_head)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.heads[0].parameters())


def test_rank_only_trains_the_hinge_alone() -> None:
    logits, y, g = tensors()
    objective = Objective([1.0], fairness_weight=1.0, hinge=True, rank_only=True, n_groups=2)
    loss, terms = objective(logits[:, None], y, g)
    assert "bce" not in terms
    assert torch.allclose(loss, pairwise_eo_hinge(logits, y, g, 2))
