"""``hsic``: class-conditional unbiased HSIC between an exit's features and the group (Gretton et al.
2005; estimator of Song et al. 2012; docs/methods.md 2a).

Per class c (binary: label 0 and 1; multiclass: each class) over the m samples of that class whose group
is known: features L2-normalised, K = exp(−d²/(2·mean d²)) with the bandwidth the mean pairwise
squared distance (detached), L the same kernel over the one-hot group, K̃ and L̃ with their diagonal set
to 0 (the reference code subtracts the diagonal vector from every row instead — a bug not copied), and
HSIC = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((m−1)(m−2)) − 2/(m−2)·1ᵀK̃L̃1] / (m(m−3)); the term is Σ_c HSIC.
A class with m < 4 contributes 0. Classes are masks over the batch, not index selections, so a step
never waits on the GPU. Multilabel tasks have no class to condition on and are refused.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from app.training.terms.base import ExitBatch, FairnessTerm, TermConfig
from app.training.terms.kernels import class_masks, squared_distances

MIN_CLASS_SAMPLES = 4


class Settings(TermConfig):
    name: Literal["hsic"] = "hsic"
    weight: float = Field(default=0.5, ge=0, le=100, description="λ (the paper's value by default)")


def rbf_mean_bandwidth(d2: Tensor, pairs: Tensor) -> Tensor:
    """exp(−d²/(2·mean d²)), the mean over the masked pairs ``pairs`` and detached; a zero mean (all
    points equal) leaves equal points at 1 and cannot divide by zero."""
    mean = ((d2 * pairs).sum() / pairs.sum().clamp(min=1)).detach().clamp(min=1e-12)
    return torch.exp(-d2 / (2 * mean))


def masked_hsic(features: Tensor, onehot: Tensor, mask: Tensor) -> Tensor:
    """Unbiased HSIC over the samples in ``mask`` (0 when fewer than 4)."""
    w = mask.to(features.dtype)
    m = w.sum()
    pairs = w[:, None] * w[None, :] * (1 - torch.eye(len(w), device=w.device))
    k = rbf_mean_bandwidth(squared_distances(features, features), pairs) * pairs
    ell = rbf_mean_bandwidth(squared_distances(onehot, onehot), pairs) * pairs
    valid = m >= MIN_CLASS_SAMPLES
    m = m.clamp(min=MIN_CLASS_SAMPLES)
    trace = (k * ell).sum()
    sums = k.sum() * ell.sum() / ((m - 1) * (m - 2))
    cross = 2 / (m - 2) * (k.sum(0) * ell.sum(0)).sum()
    return (trace + sums - cross) / (m * (m - 3)) * valid.float()


def exit_loss(settings: Settings, batch: ExitBatch) -> Tensor:
    assert batch.features is not None, "hsic needs features"
    features = F.normalize(batch.features.float(), dim=1)
    known = batch.groups >= 0
    onehot = F.one_hot(batch.groups.clamp(min=0).long(), batch.n_groups).to(features.dtype)
    width = batch.logits.shape[-1] if batch.logits.dim() > 1 else 1
    total = features.new_zeros(())
    for mask in class_masks(batch.y, batch.kind, width):
        total = total + masked_hsic(features, onehot, mask & known)
    return total


TERM = FairnessTerm(
    settings=Settings, loss=exit_loss, key="hsic", needs_features=True, tasks=frozenset({"binary", "multiclass"})
)
