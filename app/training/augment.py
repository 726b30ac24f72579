"""Batched augmentations on device tensors: flips, small rotations, brightness/contrast jitter.

Random parameters come from a CPU generator seeded per (run seed, epoch, step), so a resumed run
draws exactly what the uninterrupted run drew, on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from app.training.config import Augmentation


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)


def augment(x: Tensor, cfg: Augmentation, generator: torch.Generator) -> Tensor:
    """``x``: (N, C, H, W) floats in [0, 1]. Returns a new tensor, clamped to [0, 1]."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> Tensor:
        return (torch.rand(n, generator=generator) * (high - low) + low).to(x.device).view(n, 1, 1, 1)

    if cfg.hflip:
        x = torch.where(uniform(0, 1) < 0.5, x.flip(3), x)
    if cfg.vflip:
        x = torch.where(uniform(0, 1) < 0.5, x.flip(2), x)
    if cfg.rotate_degrees > 0:
        angle = uniform(-cfg.rotate_degrees, cfg.rotate_degrees).view(n) * (math.pi / 180)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.contrast > 0 or cfg.brightness > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = uniform(1 - cfg.contrast, 1 + cfg.contrast)
        x = (x - mean) * contrast + mean + uniform(-cfg.brightness, cfg.brightness)
    return x.clamp(0, 1)
