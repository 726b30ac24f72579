"""How a training run talks to whoever runs it: progress events out, a cancel flag in.

Both are plain callables so the same run works in a child process, a Ray worker or a notebook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["train", "validate", "select", "export", "evaluate", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of the run. Step events come at most about once a second; every epoch ends with a
        ``validate`` event carrying the epoch's validation AUC / PFD (and, multiclass, accuracy, macro F1 and
    Eopp1) (a resumed run first repeats the one of
        its last checkpointed epoch, so key them by epoch); later phases have one event each."""

    phase: Phase
    epoch: int  # 1-based; 0 before the first epoch
    epochs: int
    step: int  # optimizer steps done in the whole run
    total_steps: int  # planned steps (early stopping may end sooner)
    losses: Mapping[str, float] = field(default_factory=dict)  # running mean of this epoch, per term
    images_per_s: float | None = None
    eta_s: float | None = None
    val_auc: float | None = None
    val_pfd: float | None = None
    val_accuracy: float | None = None  # multiclass only (final exit, argmax)
    val_macro_f1: float | None = None
    val_eopp1: float | None = None
    message: str = ""


#: Any callable taking an event (a function, ``list.append``, an object with ``__call__``).
ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """Raised between steps when the run's cancel check answers True."""


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore events."""


def never_cancel() -> bool:
    return False
