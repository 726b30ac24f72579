"""Training objectives (see docs/methods.md), for every task (app.modelpkg.task): the fitting losses,
the pairwise-EO hinge (the ``pairwise_eo`` term's loss) and the objective that adds a run's terms.

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

from app.modelpkg.task import TaskKind
from app.training.terms import ExitBatch, TermConfig, get_term

MARGIN = 0.05  # on probabilities, as in the paper


@dataclass(frozen=True)
class WorstGroup:
    """The batch's worst-ranked group and whether the hinge applies to this batch at all."""

    group: Tensor  # () long: k* = argmin_k pf_k over groups with positives in the batch
    pf: Tensor  # (n_groups,) pf_k on detached scores; +inf for groups without positives
    valid: Tensor  # () bool


def worst_group(scores: Tensor, y: Tensor, groups: Tensor, n_groups: int, labelled: Tensor | None = None) -> WorstGroup:
    """pf_k = AUC of group k's positives against all negatives of the batch (ties ½), on detached scores.

    ``labelled`` (a multi-label finding's known entries) leaves the other samples out entirely."""
    s = scores.detach().float()
    pos, neg = y > 0.5, y <= 0.5
    if labelled is not None:
        pos, neg = pos & labelled, neg & labelled
    wins = (s[:, None] > s[None, :]).float() + 0.5 * (s[:, None] == s[None, :]).float()
    per_sample = (wins * neg[None, :]).sum(1) / neg.sum().clamp(min=1)  # meaningful for positives
    known = groups >= 0
    if labelled is not None:
        known = known & labelled
    index = groups.clamp(min=0)
    pos_known = (pos & known).float()
    sums = torch.zeros(n_groups, device=s.device).index_add_(0, index, per_sample * pos_known)
    counts = torch.zeros(n_groups, device=s.device).index_add_(0, index, pos_known)
    pf = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("inf")))
    present = torch.zeros(n_groups, device=s.device).index_add_(0, index, known.float()) > 0
    valid = (counts > 0).any() & neg.any() & (present.sum() >= 2)
    return WorstGroup(group=pf.argmin(), pf=pf, valid=valid)


def _score_hinge(
    s: Tensor, y: Tensor, groups: Tensor, n_groups: int, labelled: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The hinge on probabilities ``s`` (unmasked) and whether it applies to this batch."""
    worst = worst_group(s, y, groups, n_groups, labelled)
    pos_k = (y > 0.5) & (groups == worst.group)
    neg = y <= 0.5
    if labelled is not None:
        pos_k, neg = pos_k & labelled, neg & labelled
    pair = pos_k.float()[:, None] * neg.float()[None, :]
    hinge = F.relu(MARGIN - (s[:, None] - s[None, :]))
    return (pair * hinge).sum() / pair.sum().clamp(min=1), worst.valid


def pairwise_eo_hinge(logits: Tensor, y: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    """mean(relu(m − D)), D = s[positives of k*][:, None] − s[all negatives][None, :], s = sigmoid(logits)."""
    mean, valid = _score_hinge(torch.sigmoid(logits.float()), y, groups, n_groups)
    return mean * valid.float()


def one_vs_rest_hinge(logits: Tensor, y: Tensor, groups: Tensor, n_groups: int, kind: TaskKind) -> Tensor:
    """The pairwise-EO extension to several classes or findings (not in Lin et al.; docs/methods.md 2a):
    the binary hinge per class c (scores softmax p_c, positives y == c) or per finding f (scores
    sigmoid, the samples whose label is known), each with its own worst group k*, averaged over the
    classes/findings where it applies in this batch (0 when it applies to none).

    ``logits``: ``(N, width)`` of one exit; ``y``: ``(N,)`` class index or ``(N, F)`` 0/1/-1."""
    hinges, valid = [], []
    if kind == "multiclass":
        probs = torch.softmax(logits.float(), dim=1)
        for c in range(probs.shape[1]):
            h, v = _score_hinge(probs[:, c], (y == c).float(), groups, n_groups)
            hinges.append(h)
            valid.append(v)
    else:
        probs = torch.sigmoid(logits.float())
        for f in range(probs.shape[1]):
            h, v = _score_hinge(probs[:, f], y[:, f], groups, n_groups, labelled=y[:, f] >= 0)
            hinges.append(h)
            valid.append(v)
    applies = torch.stack(valid).float()
    return (torch.stack(hinges) * applies).sum() / applies.sum().clamp(min=1)


def _fit_per_exit(logits: Tensor, y: Tensor, kind: TaskKind) -> Tensor:
    """``(exits,)`` mean fitting loss of each exit: BCE (binary), cross-entropy (multiclass), or BCE over
    every known (sample, finding) entry (multilabel; ``-1`` labels take no part)."""
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(logits, y[:, None].expand_as(logits), reduction="none").mean(0)
    if kind == "multiclass":
        target = y.long()[:, None].expand(logits.shape[0], logits.shape[1])
        return F.cross_entropy(logits.permute(0, 2, 1), target, reduction="none").mean(0)
    known = (y >= 0).float()[:, None, :]
    target = y.clamp(min=0)[:, None, :].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * known
    return bce.sum(dim=(0, 2)) / known.sum().clamp(min=1)


FIT_TERM: dict[str, str] = {"binary": "bce", "multiclass": "ce", "multilabel": "bce"}


class Objective:
    """Σ_i w_i · (fit_i + Σ_t λ_t · term_t,i) over the network's exits; every run is a setting of it.

    fit: BCE (binary), cross-entropy (multiclass), per-finding BCE over known labels (multilabel).
    ``terms``: the run's fairness terms (``app.training.terms``), each added at every trained exit with
    its weight λ. ``hinge=True`` with ``fairness_weight`` is the method aliases' shorthand for a
    ``pairwise_eo`` term of that weight. ``rank_only`` drops the fitting terms (Lin et al.'s hinge-only
    setting). Exits of weight 0 are skipped, so no gradient reaches their heads.
    """

    def __init__(
        self,
        exit_weights: Sequence[float],
        *,
        rank_only: bool,
        n_groups: int,
        kind: TaskKind = "binary",
        terms: Sequence[TermConfig] = (),
        fairness_weight: float = 1.0,
        hinge: bool = False,
    ) -> None:
        self.active = [i for i, w in enumerate(exit_weights) if w > 0]
        self.weights = torch.tensor([exit_weights[i] for i in self.active], dtype=torch.float32)
        if hinge:
            terms = [*terms, get_term("pairwise_eo").settings(name="pairwise_eo", weight=fairness_weight)]
        self.terms = [(config, get_term(config.name)) for config in terms]
        self.fit = not rank_only
        self.n_groups = n_groups
        self.kind = kind

    @property
    def needs_features(self) -> bool:
        return any(term.needs_features for _, term in self.terms)

    def __call__(
        self,
        logits: Tensor,
        y: Tensor,
        groups: Tensor,
        features: Sequence[Tensor] | None = None,
        teacher_features: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its detached terms (already weighted) for progress reports. ``features`` and
        ``teacher_features``: one ``(N, D)`` tensor per exit of the network, when a term needs them."""
        logits = logits[:, self.active].float()
        w = self.weights.to(logits.device)
        total = logits.new_zeros(())
        reported: dict[str, Tensor] = {}
        if self.fit:
            fit = (w * _fit_per_exit(logits, y, self.kind)).sum()
            total = total + fit
            reported[FIT_TERM[self.kind]] = fit.detach()
        for config, term in self.terms:
            per_exit = []
            for j, e in enumerate(self.active):
                batch = ExitBatch(
                    logits=logits[:, j],
                    y=y,
                    groups=groups,
                    n_groups=self.n_groups,
                    kind=self.kind,
                    features=features[e] if features is not None else None,
                    teacher_features=teacher_features[e] if teacher_features is not None else None,
                )
                per_exit.append(term.loss(config, batch))
            loss = config.weight * (w * torch.stack(per_exit)).sum()
            total = total + loss
            reported[term.key] = loss.detach()
        reported["total"] = total.detach()
        return total, reported
