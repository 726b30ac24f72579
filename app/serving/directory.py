"""What a prediction needs to know of a model version, cached per process.

A registered version never changes: its files, their hashes and the evaluation its training job
stored are written once, in the transaction that registers it, and versions are never deleted. So
once the database has said that organisation X owns version V, that answer is kept (bounded LRU) and
a prediction that names V by id needs no database round trip before inference. Aliases move, so an
alias is looked up on every request (one indexed read). Whether the files on disk still match their
hashes is not cached here: ``runtime.ModelCache`` checks that on every lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.serving import registry
from app.serving.runtime import ModelFiles
from app.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    id: str
    files: ModelFiles
    evaluation_id: str | None  # of the evaluation the training job stored (test split)


@dataclass(frozen=True)
class AliasUse:
    """The alias a request named, and the reason an admin gave if it points here against a failed gate."""

    name: str
    override_reason: str | None


class ServedModels:
    """(organisation, model id) → ``ServedModel``, filled from read-only sessions on a miss."""

    def __init__(self, settings: Settings, read_factory: sessionmaker[Session], size: int = 1024) -> None:
        self.settings, self.read_factory, self.size = settings, read_factory, size
        self._entries: OrderedDict[tuple[str, str], ServedModel] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, organisation_id: str, ref: str) -> tuple[ServedModel, AliasUse | None]:
        """The version ``ref`` (an id or an alias) names, and the alias used, if any; 404 / 409 as
        ``registry.resolve`` says."""
        alias = None
        if not ref.startswith(registry.MODEL_ID_PREFIX):
            with self.read_factory() as session:
                target, override_reason = registry.alias_lookup(session, organisation_id, ref)
            alias, ref = AliasUse(ref, override_reason), target
        key = (organisation_id, ref)
        with self._lock:
            served = self._entries.get(key)
            if served is not None:
                self._entries.move_to_end(key)
                return served, alias
        with self.read_factory() as session:
            model, _ = registry.resolve(session, organisation_id, ref)
            evaluation_id = registry.training_evaluations(session, organisation_id, [model.id]).get(model.id)
        served = ServedModel(model.id, ModelFiles.of(self.settings, model), evaluation_id)
        with self._lock:
            self._entries[key] = served
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return served, alias
