"""ONNX export of a trained network: one graph per segment for early exit, one full graph, a parity check.

Files in the model folder:

- ``stage_<j>.onnx`` for each segment j (see ``networks``): input ``image`` (j = 0; normalised
  float32 NCHW) or ``features`` (the previous segment's ``next_features``); outputs ``next_features``
  (absent from the last segment) and ``logits`` of shape (N, k): one column per exit of that segment,
  in exit order.
- ``full.onnx``: input ``image``, output ``logits`` (N, n_exits), every exit at once.

A multiclass or multilabel network's ``logits`` have a last axis of ``width`` (K classes or F
findings): ``(N, k, width)`` per stage, ``(N, n_exits, width)`` for the full graph.

Every graph has a dynamic batch dimension. After export, ONNX Runtime (CPU provider, intra-op spinning
off) must reproduce PyTorch within 1e-4 on every probability (sigmoid, softmax or per-finding sigmoid)
at batch 1 and 8, segment by segment and chained, and the chained early-exit decisions must match
PyTorch's (samples whose confidence lies within 1e-4 of θ are not compared). A binary model's decisions
are those of ``OnnxChain``, the serving chain; a non-binary model's are ``app.modelpkg.outputs.exit_index``
on the chained stage outputs. Otherwise ``ExportParityError`` is raised and no folder is published.
The folder is written under a temporary name and renamed into place only when complete.

``model.json`` is the typed ``app.modelpkg.manifest.ModelManifest``: ``describe_model`` fills what
the network says about itself (architecture, input, preprocessing, exit costs) plus what the caller
chose (thresholds and, for a trained model, how they were chosen and the training record);
``export_model`` adds the graphs, the parity check, every file's SHA-256 and the library versions,
and writes it through ``app.modelpkg.folder`` (docs/model-format.md).
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from app.core.errors import ConflictError
from app.modelpkg.folder import file_entries, write_manifest
from app.modelpkg.manifest import (
    FORMAT_VERSION,
    Architecture,
    Decision,
    ExitPolicy,
    Graphs,
    GraphSpec,
    InputSpec,
    ModelDescription,
    ModelManifest,
    OutputSpec,
    Parity,
    ParityDiffs,
    TrainingRecord,
    Versions,
)
from app.modelpkg.onnx_chain import OnnxChain, make_session
from app.modelpkg.outputs import exit_confidences, exit_index, probabilities
from app.modelpkg.preprocessing import Preprocessing
from app.modelpkg.task import TaskKind
from app.modelpkg.threshold_rule import ThresholdRule
from app.training.networks import MultiExitNet, exit_costs
from app.training.networks import probabilities as torch_probabilities
from app.training.teacher import save_weights

IC_HEAD = {
    "paper": "conv3x3(C->64)+ReLU, adaptive avg-pool to p x p, conv3x3(64->32)+ReLU, global avg-pool, linear(32->{w})",
    "pooled": "adaptive avg-pool to p x p, conv3x3(C->64)+ReLU, conv3x3(64->32)+ReLU, global avg-pool, linear(32->{w})",
}
FINAL_HEAD = "global avg-pool, linear(C->{w})"
PROBABILITY = {"binary": "sigmoid(logit)", "multiclass": "softmax(logits)", "multilabel": "sigmoid(logit) per finding"}
PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 8)


class ExportParityError(RuntimeError):
    """ONNX Runtime does not reproduce PyTorch closely enough; the model must not be served."""


@dataclass(frozen=True)
class ExportedModel:
    manifest: ModelManifest  # exactly what model.json says
    manifest_sha256: str  # of model.json's bytes: the hash the registry stores


class _SegmentGraph(nn.Module):
    def __init__(self, net: MultiExitNet, index: int) -> None:
        super().__init__()
        self.net, self.index = net, index
        self.last = index == len(net.segments) - 1

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features, logits = self.net.forward_segment(self.index, x)
        return logits if self.last else (features, logits)


def graph_specs(net: MultiExitNet) -> tuple[list[GraphSpec], GraphSpec]:
    last = len(net.segments) - 1
    stages = [
        GraphSpec(
            file=f"stage_{j}.onnx",
            inputs=("image" if j == 0 else "features",),
            outputs=("logits",) if j == last else ("next_features", "logits"),
            exits=seg.exits,
        )
        for j, seg in enumerate(net.segments)
    ]
    full = GraphSpec(file="full.onnx", inputs=("image",), outputs=("logits",), exits=tuple(range(net.n_exits)))
    return stages, full


def describe_model(
    net: MultiExitNet,
    *,
    backbone: str,
    version: str,
    method: str,
    operating_threshold: float | None,
    exit_thresholds: Sequence[float | None],
    operating_threshold_rule: ThresholdRule | None = None,
    exit_policy: ExitPolicy | None = None,
    training: TrainingRecord | None = None,
    decision: Decision | None = None,
) -> ModelDescription:
    """The manifest's description of ``net`` (its architecture, input, preprocessing, task, outputs and
    exit costs are read off the network) with the thresholds chosen for it: ``operating_threshold``
    for a binary network, ``decision`` for any other. ``operating_threshold_rule`` (binary),
    ``exit_policy`` and ``training`` record a training run and come together (``app.training.run``)."""
    multi = net.n_exits > 1
    task = net.task
    channels, size = net.backbone.in_channels, net.image_size
    costs = exit_costs(net)
    return ModelDescription(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=datetime.now(UTC),
        method=method,
        architecture=Architecture(
            backbone=backbone,
            n_stages=net.backbone.n_stages,
            n_exits=net.n_exits,
            exit_stage=list(net.exit_stage),
            exit_names=[f"ic{e + 1}" for e in range(net.n_exits - 1)] + ["final"],
            ic_head=IC_HEAD[net.ic_head].format(w=task.width) if net.ic_head is not None else None,
            ic_head_kind=net.ic_head,
            ic_pool_sizes=list(net.ic_pool_sizes),
            final_head=FINAL_HEAD.format(w=task.width),
            served="early_exit" if multi else "final_exit",
        ),
        input=InputSpec.model_validate({"channels": channels, "height": size, "width": size}),
        preprocessing=Preprocessing.for_image(channels, size),
        task=task,
        output=OutputSpec.model_validate(
            {
                "probability": PROBABILITY[task.kind],
                "positive_label": 1 if task.kind == "binary" else None,
                "width": task.width,
            }
        ),
        exit_costs=list(costs.fractions),
        exit_macs=list(costs.exit_macs),
        operating_threshold=operating_threshold,
        decision=decision,
        operating_threshold_rule=operating_threshold_rule,
        exit_thresholds=list(exit_thresholds),
        exit_policy=exit_policy,
        training=training,
    )


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs torchvision-op notices and deprecation warnings that say nothing about us."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export(module: nn.Module, example: Tensor, path: Path, spec: GraphSpec) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet_exporter():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            verbose=False,
            external_data=False,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_shapes=({0: batch},),
        )


def _parity(
    net: MultiExitNet, folder: Path, images: np.ndarray, thresholds: Sequence[float | None]
) -> dict[str, float]:
    """Compare every graph with PyTorch at each batch size; raise ``ExportParityError`` on a mismatch."""
    kind = net.task.kind
    stage_specs, full_spec = graph_specs(net)
    sessions = [make_session((folder / s.file).read_bytes()) for s in stage_specs]
    full = make_session((folder / full_spec.file).read_bytes())
    worst = {"stage": 0.0, "chain": 0.0, "full": 0.0}
    for size in PARITY_BATCHES:
        x = np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])), dtype=np.float32)
        feats, chained, expected, onnx_chained = torch.from_numpy(x), x, [], []
        with torch.no_grad():
            for j, (session, spec) in enumerate(zip(sessions, stage_specs, strict=True)):
                ref_input = feats.numpy()
                feats, logits = net.forward_segment(j, feats)
                ref = torch_probabilities(logits, net.task).numpy()
                expected.append(ref)
                stage_out = session.run(None, {spec.inputs[0]: ref_input})[-1]
                worst["stage"] = max(worst["stage"], _diff(kind, stage_out, ref))
                outs = session.run(None, {spec.inputs[0]: chained})
                worst["chain"] = max(worst["chain"], _diff(kind, outs[-1], ref))
                onnx_chained.append(probabilities(kind, outs[-1]))
                chained = outs[0]
        ref_all = np.concatenate(expected, axis=1)
        worst["full"] = max(worst["full"], _diff(kind, full.run(None, {"image": x})[0], ref_all))
        if kind == "binary":
            decided = OnnxChain(sessions, stage_specs, thresholds).run(x).exit_index
        else:
            decided = exit_index(kind, np.concatenate(onnx_chained, axis=1), thresholds)
        expected_exit = exit_index(kind, ref_all, thresholds)
        conf = exit_confidences(kind, ref_all)[:, :-1]
        theta = np.array([np.inf if t is None else t for t in thresholds[:-1]])
        clear = ~(np.abs(conf - theta) <= PARITY_TOLERANCE).any(axis=1)
        if not np.array_equal(decided[clear], expected_exit[clear]):
            raise ExportParityError(f"early-exit decisions differ from PyTorch at batch {size}")
    if max(worst.values()) > PARITY_TOLERANCE:
        raise ExportParityError(f"ONNX Runtime differs from PyTorch by up to {max(worst.values()):.2e}: {worst}")
    return worst


def _diff(kind: TaskKind, onnx_logits: np.ndarray, torch_probs: np.ndarray) -> float:
    """Max abs difference of probabilities."""
    return float(np.abs(probabilities(kind, onnx_logits) - torch_probs).max())


def export_model(
    net: MultiExitNet,
    folder: Path,
    *,
    parity_images: np.ndarray,
    description: ModelDescription,
    keep_weights: bool = False,
) -> ExportedModel:
    """Write the graphs and ``model.json`` (``description`` + graphs, parity, hashes, versions) to ``folder``.

    ``parity_images``: normalised float32 NCHW samples (validation images) for the parity check, which
    also checks the chained decisions with ``description.exit_thresholds``. ``keep_weights`` also
    writes the PyTorch state dict (``weights.pt``, listed with its hash) so the model can be a teacher.
    """
    if folder.exists():
        raise ConflictError(f"model version folder {folder} already exists")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.partial"  # a killed earlier attempt's leftovers go first
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model = copy.deepcopy(net).cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        model.eval()
        stage_specs, full_spec = graph_specs(model)
        example = torch.from_numpy(np.resize(parity_images, (2, *parity_images.shape[1:])).astype(np.float32))
        x = example
        with torch.no_grad():
            for j, spec in enumerate(stage_specs):
                _export(_SegmentGraph(model, j), x, tmp / spec.file, spec)
                x = model.segment_features(j, x)
        _export(model, example, tmp / full_spec.file, full_spec)
        worst = _parity(model, tmp, parity_images, description.exit_thresholds)
        if keep_weights:
            save_weights(model, tmp)
        opset = {o.domain or "ai.onnx": o.version for o in onnx.load(str(tmp / full_spec.file)).opset_import}
        manifest = ModelManifest(
            **dict(description),
            graphs=Graphs(stages=stage_specs, full=full_spec),
            parity=Parity(
                max_abs_prob_diff=ParityDiffs(**worst), tolerance=PARITY_TOLERANCE, batches=list(PARITY_BATCHES)
            ),
            files=file_entries(tmp),
            versions=Versions(
                python=platform.python_version(),
                torch=torch.__version__,
                onnx=onnx.__version__,
                onnxruntime=ort.__version__,
                opset=opset,
            ),
        )
        sha256 = write_manifest(tmp, manifest)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportedModel(manifest, sha256)
