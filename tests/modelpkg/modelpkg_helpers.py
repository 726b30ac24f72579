"""Tiny model folders exported with the real exporter (seeded ``small`` networks, 16 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.modelpkg.manifest import Decision
from app.modelpkg.task import BINARY, Task
from app.training.export import ExportedModel, describe_model, export_model
from app.training.networks import build_network

SIZE = 16


def export_tiny(folder: Path, seed: int = 0, *, multi_exit: bool = True, task: Task = BINARY) -> ExportedModel:
    """A seeded, untrained network exported to ``folder`` (its name is the version id). A multiclass
    network decides by argmax, a multilabel one at 0.5 per finding."""
    torch.manual_seed(seed)
    net = build_network("small", in_channels=3, image_size=SIZE, multi_exit=multi_exit, task=task).eval()
    thresholds: list[float | None] = [0.9 if task.kind == "binary" else 0.5] * (net.n_exits - 1) + [None]
    decision = {
        "binary": None,
        "multiclass": Decision(rule="argmax", thresholds=None),
        "multilabel": Decision(rule="per-finding threshold", thresholds=[0.5] * task.width),
    }[task.kind]
    description = describe_model(
        net,
        backbone="small",
        version=folder.name,
        method="fair_multi_exit" if multi_exit else "erm",
        operating_threshold=0.5 if task.kind == "binary" else None,
        exit_thresholds=thresholds,
        decision=decision,
    )
    images = np.random.default_rng(seed).normal(size=(8, 3, SIZE, SIZE)).astype(np.float32)
    return export_model(net, folder, parity_images=images, description=description)


def pixels(n: int, seed: int = 0) -> np.ndarray:
    """Random ``uint8`` (n, SIZE, SIZE, 3) images."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
