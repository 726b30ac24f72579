"""ONNX Runtime sessions and the early-exit chain over a model's stage graphs.

Shared by the exporter's parity check, serving and the evaluation job, so the chain that was checked
against PyTorch at export is the chain that serves. Imports neither torch nor FastAPI: the API process
stays light. Sessions are built from bytes only, never from a path: a caller first gets the bytes
checked against their recorded SHA-256 (``app.modelpkg.folder``), and runs exactly those.

Sessions never spin after a run (``session.intra_op.allow_spinning = 0``): with spinning on, each
stage's worker threads keep the cores busy after returning and starve the next stage, so a chain of
four stage sessions costs ~4.7× the full graph instead of ~1× (benchmarks/README.md, Reference measurements).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from app.modelpkg.manifest import GraphSpec
from app.modelpkg.outputs import probabilities
from app.modelpkg.task import BINARY, Task, TaskKind, exit_confidence

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serving_providers() -> list[str]:
    """CUDA when this onnxruntime build and host have it (CPU stays as the fallback), else CPU only."""
    return [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]


def make_session(model: bytes, threads: int | None = None, providers: Sequence[str] = (CPU,)) -> ort.InferenceSession:
    """A session over a graph's (verified) bytes that does not spin after a run."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=list(providers))


class StageSession(Protocol):
    def run(self, output_names: Any, input_feed: dict[str, Any]) -> list[Any]: ...


@dataclass(frozen=True)
class ChainResult:
    probability: np.ndarray  # served probabilities: (n,) binary, (n, width) multiclass and multilabel
    exit_index: np.ndarray  # (n,) exit that decided
    rows: list[int]  # samples each stage graph ran on
    kind: TaskKind = "binary"

    @property
    def confidence(self) -> np.ndarray:
        """(n,) the deciding exit's confidence (``app.modelpkg.task.exit_confidence``)."""
        return exit_confidence(self.kind, self.probability)


class OnnxChain:
    """Runs the stage graphs in order on only the samples still undecided.

    A sample leaves at the first exit whose confidence reaches that exit's θ (``None``: that exit
    never decides); the last exit decides whatever is left. Confidence is the task's
    (``exit_confidence``): max(p, 1 − p) for a binary task, the largest softmax for a multiclass one,
    the least confident finding's max(p, 1 − p) for a multilabel one. Stage ``j + 1`` runs only on
    the samples still undecided after stage ``j``, and not at all when none is left.
    """

    def __init__(
        self,
        sessions: Sequence[StageSession],
        specs: Sequence[GraphSpec],
        thresholds: Sequence[float | None],
        task: Task = BINARY,
    ) -> None:
        self.sessions, self.specs, self.thresholds = list(sessions), list(specs), list(thresholds)
        self.n_exits, self.task = len(self.thresholds), task

    def run(self, image: np.ndarray) -> ChainResult:
        n, kind = len(image), self.task.kind
        shape = (n,) if kind == "binary" else (n, self.task.width)
        probability, chosen = np.empty(shape), np.full(n, -1)
        alive = np.arange(n)  # original rows still undecided
        x, rows = image, []
        for session, spec in zip(self.sessions, self.specs, strict=True):
            if len(alive) == 0:
                rows.append(0)
                continue
            rows.append(len(alive))
            outs = session.run(None, {spec.inputs[0]: x})
            p = probabilities(kind, outs[-1])  # (m, exits of the stage) or (m, exits of the stage, width)
            stay = np.ones(len(alive), dtype=bool)
            for col, e in enumerate(spec.exits):
                theta = self.thresholds[e]
                if e == self.n_exits - 1:
                    leave = stay.copy()
                elif theta is None:
                    continue
                else:
                    leave = stay & (exit_confidence(kind, p[:, col]) >= theta)
                probability[alive[leave]], chosen[alive[leave]] = p[leave, col], e
                stay &= ~leave
            alive = alive[stay]
            if len(outs) > 1:
                x = outs[0][stay]
        return ChainResult(probability, chosen, rows, kind)
