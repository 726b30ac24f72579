"""Fairness-aware training of multi-exit image classifiers, in plain PyTorch.

Never imports the web or database layers: the same code runs in a child process, a Ray worker or a
notebook. ``run_training`` is the entry point; see ``docs/methods.md`` for the four methods.
Names are resolved lazily so ``app.training.config`` / ``.validation`` stay importable without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.training.config import Augmentation, TrainingConfig
    from app.training.export import ExportParityError
    from app.training.progress import Cancelled, ProgressCallback, ProgressEvent
    from app.training.run import TrainingResult, run_training
    from app.training.validation import validate_training_config

_EXPORTS = {
    "Augmentation": "app.training.config",
    "TrainingConfig": "app.training.config",
    "ExportParityError": "app.training.export",
    "Cancelled": "app.training.progress",
    "ProgressCallback": "app.training.progress",
    "ProgressEvent": "app.training.progress",
    "TrainingResult": "app.training.run",
    "run_training": "app.training.run",
    "validate_training_config": "app.training.validation",
}
__all__ = [
    "Augmentation",
    "Cancelled",
    "ExportParityError",
    "ProgressCallback",
    "ProgressEvent",
    "TrainingConfig",
    "TrainingResult",
    "run_training",
    "validate_training_config",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'app.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
