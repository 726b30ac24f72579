"""Loaded models: one ONNX Runtime session per stage graph per process, cached in a bounded LRU.

Loading reads every file of the version once, checks it against the recorded SHA-256 and builds the
sessions from those verified bytes (never from the paths, so nothing can be swapped in between).
Each lookup re-stats the files (microseconds): a file replaced or touched on disk while its model is
cached makes the next request reload and re-verify it, and a tampered model stops being served.

Sessions: explicit providers (CUDA when available, else CPU), intra-op threads sized to the cores this
process may use divided among the server's processes (``FAIRAUDIT_WORKERS``), no spinning (see
``app.modelpkg.onnx_chain``). ``InferenceSession.run`` is thread-safe, so one loaded model serves
concurrent requests from the threadpool.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from starlette.requests import Request

from app.cohorts.image_limits import ImageLimits
from app.modelpkg.manifest import MANIFEST_FILE, ModelManifest
from app.modelpkg.onnx_chain import ChainResult, OnnxChain, cpu_count, make_session, serving_providers
from app.modelpkg.task import Task, multiclass_decision
from app.serving.integrity import RefusedModelError, read_verified
from app.serving.models import ModelVersion
from app.serving.preprocess import decode_images
from app.settings import Settings

Signature = tuple[tuple[str, int, int, int] | None, ...]


@dataclass(frozen=True)
class ModelFiles:
    """Where a registered version's files are and the hashes they must have."""

    key: str
    folder: Path
    expected: dict[str, str]  # file name -> SHA-256, model.json included

    @classmethod
    def of(cls, settings: Settings, model: ModelVersion) -> ModelFiles:
        expected = {**{str(k): str(v) for k, v in model.files.items()}, MANIFEST_FILE: model.sha256}
        return cls(key=f"{model.id}:{model.sha256}", folder=settings.model_dir / model.path, expected=expected)

    def signature(self) -> Signature:
        """(name, mtime, size, inode) per file; ``None`` for a missing one."""
        out: list[tuple[str, int, int, int] | None] = []
        for name in sorted(self.expected):
            try:
                st = os.stat(self.folder / name)
            except OSError:
                out.append(None)
                continue
            out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)


@dataclass(frozen=True)
class LoadedModel:
    sha256: str  # of model.json
    manifest: ModelManifest
    chain: OnnxChain
    signature: Signature

    @property
    def task(self) -> Task:
        return self.manifest.task

    @property
    def operating_threshold(self) -> float | None:
        """Binary models' frozen threshold; ``None`` for other tasks (they have ``decision_thresholds``)."""
        return self.manifest.operating_threshold

    @property
    def decision_thresholds(self) -> np.ndarray | None:
        """Per class (the class-threshold rule) or per finding; ``None`` for argmax and binary models."""
        decision = self.manifest.decision
        if decision is None or decision.thresholds is None:
            return None
        return np.asarray(decision.thresholds, dtype=np.float64)

    def predict(self, images: Sequence[bytes], names: Sequence[str], limits: ImageLimits) -> ChainResult:
        """Decode, normalise and run the early-exit chain on one batch."""
        pixels = decode_images(images, names, self.manifest.input, limits)
        return self.chain.run(self.manifest.preprocessing.normalise(pixels))

    def labels(self, probability: np.ndarray) -> np.ndarray:
        """The decision frozen with the model. Binary: ``(n,)`` ``probability >= operating_threshold``;
        multiclass: ``(n,)`` class index by ``multiclass_decision``; multilabel: ``(n, F)`` 0/1,
        finding ``f`` present when ``p_f >= t_f``."""
        kind, thresholds = self.task.kind, self.decision_thresholds
        if kind == "multiclass":
            return multiclass_decision(probability, thresholds).astype(np.int64)
        if kind == "multilabel":
            assert thresholds is not None  # the manifest requires one per finding
            return (probability >= thresholds[None, :]).astype(np.int64)
        assert self.operating_threshold is not None  # the manifest requires one for a binary task
        return (probability >= self.operating_threshold).astype(np.int64)


def is_binary(model: ModelVersion) -> bool:
    """Whether a registered version is binary, from its row alone: only binary models have an
    operating threshold (``model.json`` has ``null`` for other tasks, and registration copies it)."""
    return model.thresholds.get("operating") is not None


def manifest_of(files: ModelFiles) -> ModelManifest:
    """A version's ``model.json`` (its task, class names and decision), checked against the registered
    hash without loading its graphs; cached per hash, which pins the content (409 when the file on
    disk no longer matches at the first read)."""
    return _verified_manifest(files.folder, files.expected[MANIFEST_FILE])


@lru_cache(maxsize=256)
def _verified_manifest(folder: Path, manifest_sha256: str) -> ModelManifest:
    verified, _ = read_verified(folder, manifest_sha256, names=())
    return verified.manifest


def load_model(files: ModelFiles, threads: int, providers: Sequence[str]) -> LoadedModel:
    """Verify every file of the version and build the stage sessions from the verified bytes."""
    signature = files.signature()  # taken first: a change while reading shows up at the next lookup
    verified, contents = read_verified(files.folder, files.expected[MANIFEST_FILE])
    manifest = verified.manifest
    stages = manifest.graphs.stages
    sessions = [make_session(contents[s.file], threads, providers) for s in stages]
    return LoadedModel(
        sha256=verified.sha256,
        manifest=manifest,
        chain=OnnxChain(sessions, stages, manifest.exit_thresholds, manifest.task),
        signature=signature,
    )


class ModelCache:
    """Bounded LRU of loaded models. Lookups of cached models never wait for a model being loaded."""

    def __init__(self, size: int, threads: int, providers: Sequence[str]) -> None:
        self.size, self.threads, self.providers = size, threads, list(providers)
        self._entries: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries
        self._load_lock = threading.Lock()  # one load at a time: loads are rare and CPU-bound anyway

    def get(self, files: ModelFiles) -> LoadedModel:
        signature = files.signature()
        cached = self._cached(files.key, signature)
        if cached is not None:
            return cached
        with self._load_lock:
            cached = self._cached(files.key, signature)  # loaded while we waited
            if cached is not None:
                return cached
            try:
                model = load_model(files, self.threads, self.providers)
            except RefusedModelError:
                self.evict(files.key)
                raise
            with self._lock:
                self._entries[files.key] = model
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return model

    def _cached(self, key: str, signature: Signature) -> LoadedModel | None:
        with self._lock:
            model = self._entries.get(key)
            if model is None or model.signature != signature:
                return None
            self._entries.move_to_end(key)
            return model

    def evict(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


_create_lock = threading.Lock()


async def model_cache(request: Request) -> ModelCache:
    """The app's cache, created on first use (dependency; async only to skip a threadpool hop)."""
    state = request.app.state
    with _create_lock:
        cache: ModelCache | None = getattr(state, "model_cache", None)
        if cache is None:
            settings: Settings = state.settings
            threads = max(1, cpu_count() // settings.workers)  # worker processes share the cores
            cache = state.model_cache = ModelCache(settings.model_cache_size, threads, serving_providers())
    return cache
