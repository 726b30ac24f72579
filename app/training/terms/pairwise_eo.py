"""``pairwise_eo``: Lin et al.'s marginal pairwise-EO hinge on an exit's scores (docs/methods.md 1);
one-vs-rest and averaged for multiclass and multilabel tasks (2a, not in the paper). Reported as
``hinge``, as before the term interface existed."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from app.training.losses import one_vs_rest_hinge, pairwise_eo_hinge
from app.training.terms.base import ExitBatch, FairnessTerm, TermConfig


class Settings(TermConfig):
    name: Literal["pairwise_eo"] = "pairwise_eo"


def exit_loss(settings: Settings, batch: ExitBatch) -> Tensor:
    if batch.kind == "binary":
        return pairwise_eo_hinge(batch.logits, batch.y, batch.groups, batch.n_groups)
    return one_vs_rest_hinge(batch.logits, batch.y, batch.groups, batch.n_groups, batch.kind)


TERM = FairnessTerm(settings=Settings, loss=exit_loss, key="hinge")
