"""The interface every fairness term implements (docs/methods.md, "Fairness terms").

A term is one module in this package that defines ``Settings`` (a ``TermConfig``: its weight λ and its
own validated settings) and ``TERM`` (a ``FairnessTerm``: what it needs and its loss for one exit);
``app.training.terms.REGISTRY`` names the module. This module imports no torch so that a config
naming no term validates without loading the training stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app.modelpkg.task import TaskKind

if TYPE_CHECKING:
    from torch import Tensor


class TermConfig(BaseModel):
    """A term as a config names it: ``name``, the weight λ of its loss, then its own settings.

    Each term's ``Settings`` subclass forbids unknown keys; the schema of this base (what the API
    document shows for ``terms``) allows them, since they are the terms' own settings."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, json_schema_extra={"additionalProperties": True}
    )

    name: str
    weight: float = Field(default=1.0, ge=0, le=100, description="λ: the term's loss is added as λ · loss")

    def settings(self) -> dict[str, Any]:
        """The term's own settings (everything but name and weight), as JSON, for the manifest."""
        return self.model_dump(mode="json", exclude={"name", "weight"})


@dataclass(frozen=True)
class ExitBatch:
    """What a term sees of one exit on one training batch.

    ``logits``: ``(N,)`` binary, ``(N, width)`` otherwise; ``y``: labels as the task stores them;
    ``groups``: training group codes (``-1``: unknown); ``features``: the features feeding the exit,
    ``(N, D)``, when the term ``needs_features``; ``teacher_features``: the teacher's at the same exit,
    detached, when it ``needs_teacher``."""

    logits: Tensor
    y: Tensor
    groups: Tensor
    n_groups: int
    kind: TaskKind
    features: Tensor | None = None
    teacher_features: Tensor | None = None


@dataclass(frozen=True)
class FairnessTerm:
    """A term's behaviour. ``loss(settings, batch)`` is the unweighted loss of one exit (a 0-d tensor
    that is 0 with zero gradient when the batch does not define it); the objective multiplies it by the
    exit weight and λ. ``key`` names its entry in the loss reports. ``tasks``: the task kinds it supports
    (others are refused before training)."""

    settings: type[TermConfig]
    loss: Callable[[Any, ExitBatch], Tensor]
    key: str
    needs_features: bool = False
    needs_teacher: bool = False
    tasks: frozenset[TaskKind] = frozenset({"binary", "multiclass", "multilabel"})
