"""``mfd``: fair feature distillation (Jung et al., CVPR 2021; docs/methods.md 2a). The student's
features at each exit are pulled, class by class and group by group, toward a teacher's features of the
same class: Σ_{c,g} MMD²(T_c, S_{c,g}), times ½·``mmd_weight``.

MMD²(T_c, S_{c,g}) = mean K(T_c,T_c) + mean K(S_{c,g},S_{c,g}) − 2·mean K(T_c,S_{c,g}) with the RBF kernel
exp(−d²/(2·σ·σ̄)), σ = ``sigma``, σ̄ the mean teacher–student squared distance in the batch (detached).
Features are L2-normalised, as in the reference code. A (class, group) cell absent from the batch
contributes 0. The teacher is an existing model version of the same architecture, trained on the
same cohort and kept with its PyTorch weights (``keep_weights``); it runs in eval mode under no_grad on
the same batch inside the training step. Multilabel tasks have no class to condition on and are refused.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from app.core.fields import ResourceRef
from app.training.terms.base import ExitBatch, FairnessTerm, TermConfig
from app.training.terms.kernels import class_masks, squared_distances


class Settings(TermConfig):
    name: Literal["mfd"] = "mfd"
    weight: float = Field(default=0.02, ge=0, le=100, description="λ (the paper's value by default)")
    teacher_model_version_id: ResourceRef = Field(
        description="a model version of this organisation, same backbone and cohort, trained with keep_weights"
    )
    sigma: float = Field(default=0.5, gt=0, le=100, description="σ of the RBF kernel exp(−d²/(2·σ·σ̄))")
    mmd_weight: float = Field(default=5.0, ge=0, le=100, description="w_m: the term is ½·w_m·Σ MMD²")


def mmd2(teacher: Tensor, student: Tensor, t_mask: Tensor, s_mask: Tensor, sigma: float) -> Tensor:
    """MMD² between the teacher rows in ``t_mask`` and the student rows in ``s_mask`` (rows of
    ``(cells, N)`` float masks), one value per cell; 0 for a cell with an empty side."""
    d_ts = squared_distances(teacher, student)
    bandwidth = 2 * sigma * d_ts.mean().detach().clamp(min=1e-12)
    k_tt = torch.exp(-squared_distances(teacher, teacher) / bandwidth)
    k_ss = torch.exp(-squared_distances(student, student) / bandwidth)
    k_ts = torch.exp(-d_ts / bandwidth)
    n_t, n_s = t_mask.sum(1), s_mask.sum(1)
    tt = torch.einsum("ci,ij,cj->c", t_mask, k_tt, t_mask) / (n_t * n_t).clamp(min=1)
    ss = torch.einsum("ci,ij,cj->c", s_mask, k_ss, s_mask) / (n_s * n_s).clamp(min=1)
    ts = torch.einsum("ci,ij,cj->c", t_mask, k_ts, s_mask) / (n_t * n_s).clamp(min=1)
    return (tt + ss - 2 * ts) * ((n_t > 0) & (n_s > 0)).float()


def exit_loss(settings: Settings, batch: ExitBatch) -> Tensor:
    assert batch.features is not None and batch.teacher_features is not None, "mfd needs both features"
    student = F.normalize(batch.features.float(), dim=1)
    teacher = F.normalize(batch.teacher_features.float(), dim=1).detach()
    width = batch.logits.shape[-1] if batch.logits.dim() > 1 else 1
    classes = torch.stack(list(class_masks(batch.y, batch.kind, width))).float()  # (C, N)
    groups = F.one_hot(batch.groups.clamp(min=0).long(), batch.n_groups).T.float() * (batch.groups >= 0).float()
    cells = (classes[:, None, :] * groups[None, :, :]).reshape(-1, len(batch.y))  # (C·G, N)
    t_mask = classes.repeat_interleave(batch.n_groups, dim=0)
    return 0.5 * settings.mmd_weight * mmd2(teacher, student, t_mask, cells, settings.sigma).sum()


TERM = FairnessTerm(
    settings=Settings,
    loss=exit_loss,
    key="mfd",
    needs_features=True,
    needs_teacher=True,
    tasks=frozenset({"binary", "multiclass"}),
)
