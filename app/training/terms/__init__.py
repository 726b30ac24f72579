"""The fairness-term registry: adding a term is one module in this package and one line here.

Modules are imported when a config first names their term, so configs without terms (and the API
validating them) never load torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from app.training.terms.base import ExitBatch, FairnessTerm, TermConfig

REGISTRY: dict[str, str] = {
    "pairwise_eo": "app.training.terms.pairwise_eo",
    "hsic": "app.training.terms.hsic",
    "mfd": "app.training.terms.mfd",
}

__all__ = ["REGISTRY", "ExitBatch", "FairnessTerm", "TermConfig", "get_term", "parse_term"]


def get_term(name: str) -> FairnessTerm:
    """The registered term ``name`` (``KeyError`` for an unknown one)."""
    term: FairnessTerm = importlib.import_module(REGISTRY[name]).TERM
    return term


def parse_term(data: object) -> TermConfig:
    """A term's config from request data: ``{"name": ..., "weight": ..., <its settings>}``."""
    if isinstance(data, TermConfig):
        return data
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise ValueError('a term is an object with a "name"')
    name: Any = data["name"]
    if name not in REGISTRY:
        raise ValueError(f"unknown term {name!r}; known: {', '.join(REGISTRY)}")
    return get_term(name).settings.model_validate(dict(data))
