"""Training objectives of the four methods (see docs/methods.md).

The pairwise-EO hinge follows Lin et al. step by step, without the reference code's two slips: every
group's positives get target 1 (the margin is the same 0.05 for all), and the "more than one group
in the batch" check really skips the term when the batch holds fewer than two groups. The term is also
skipped when the batch has no positive or no negative. Skips are masks, not branches, so a step never
waits on the GPU; a skipped term contributes zero loss and zero gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MARGIN = 0.05  # on probabilities, as in the paper


@dataclass(frozen=True)
class WorstGroup:
    """The batch's worst-ranked group and whether the hinge applies to this batch at all."""

    group: Tensor  # () long: k* = argmin_k pf_k over groups with positives in the batch
    pf: Tensor  # (n_groups,) pf_k on detached scores; +inf for groups without positives
    valid: Tensor  # () bool


def worst_group(scores: Tensor, y: Tensor, groups: Tensor, n_groups: int) -> WorstGroup:
    """pf_k = AUC of group k's positives against all negatives of the batch (ties ½), on detached scores."""
    s = scores.detach().float()
    pos, neg = y > 0.5, y <= 0.5
    wins = (s[:, None] > s[None, :]).float() + 0.5 * (s[:, None] == s[None, :]).float()
    per_sample = (wins * neg[None, :]).sum(1) / neg.sum().clamp(min=1)  # meaningful for positives
    known = groups >= 0
    index = groups.clamp(min=0)
    pos_known = (pos & known).float()
    sums = torch.zeros(n_groups, device=s.device).index_add_(0, index, per_sample * pos_known)
    counts = torch.zeros(n_groups, device=s.device).index_add_(0, index, pos_known)
    pf = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("inf")))
    present = torch.zeros(n_groups, device=s.device).index_add_(0, index, known.float()) > 0
    valid = (counts > 0).any() & neg.any() & (present.sum() >= 2)
    return WorstGroup(group=pf.argmin(), pf=pf, valid=valid)


def pairwise_eo_hinge(logits: Tensor, y: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    """mean(relu(m − D)), D = s[positives of k*][:, None] − s[all negatives][None, :], s = sigmoid(logits)."""
    s = torch.sigmoid(logits.float())
    worst = worst_group(s, y, groups, n_groups)
    pos_k = ((y > 0.5) & (groups == worst.group)).float()
    neg = (y <= 0.5).float()
    pair = pos_k[:, None] * neg[None, :]
    hinge = F.relu(MARGIN - (s[:, None] - s[None, :]))
    mean = (pair * hinge).sum() / pair.sum().clamp(min=1)
    return mean * worst.valid.float()


class Objective:
    """Σ_i w_i · (BCE_i + λ · hinge_i) over the network's exits; each method is a setting of it.

    ``erm``: one exit, no hinge. ``pairwise_eo``: one exit with the hinge. ``fair_multi_exit``: every
    exit weighted, no hinge. ``fair_multi_exit_pairwise_eo``: every exit, each with its hinge.
    ``rank_only`` drops the BCE terms (the paper's hinge-only setting). Exits of weight 0 are skipped,
    so no gradient reaches their heads.
    """

    def __init__(
        self,
        exit_weights: Sequence[float],
        *,
        fairness_weight: float,
        hinge: bool,
        rank_only: bool,
        n_groups: int,
    ) -> None:
        self.active = [i for i, w in enumerate(exit_weights) if w > 0]
        self.weights = torch.tensor([exit_weights[i] for i in self.active], dtype=torch.float32)
        self.fairness_weight = fairness_weight
        self.hinge = hinge
        self.bce = not rank_only
        self.n_groups = n_groups

    def __call__(self, logits: Tensor, y: Tensor, groups: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its detached terms (already weighted) for progress reports."""
        logits = logits[:, self.active].float()
        w = self.weights.to(logits.device)
        total = logits.new_zeros(())
        terms: dict[str, Tensor] = {}
        if self.bce:
            per_exit = F.binary_cross_entropy_with_logits(logits, y[:, None].expand_as(logits), reduction="none").mean(
                0
            )
            bce = (w * per_exit).sum()
            total = total + bce
            terms["bce"] = bce.detach()
        if self.hinge:
            hinges = torch.stack(
                [pairwise_eo_hinge(logits[:, i], y, groups, self.n_groups) for i in range(logits.shape[1])]
            )
            hinge = self.fairness_weight * (w * hinges).sum()
            total = total + hinge
            terms["hinge"] = hinge.detach()
        terms["total"] = total.detach()
        return total, terms
