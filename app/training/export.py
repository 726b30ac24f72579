"""ONNX export of a trained network: one graph per segment for early exit, one full graph, a parity check.

Files in the model folder:

- ``stage_<j>.onnx`` for each segment j (see ``networks``): input ``image`` (j = 0; normalised
  float32 NCHW) or ``features`` (the previous segment's ``next_features``); outputs ``next_features``
  (absent from the last segment) and ``logits`` of shape (N, k): one column per exit of that segment,
  in exit order.
- ``full.onnx``: input ``image``, output ``logits`` (N, n_exits), every exit at once.

Every graph has a dynamic batch dimension. After export, ONNX Runtime (CPU provider, intra-op spinning
off) must reproduce PyTorch within 1e-4 on every probability at batch 1 and 8, segment by segment and
chained, and the chained early-exit decisions must match PyTorch's (samples whose confidence lies within
1e-4 of θ are not compared). Otherwise ``ExportParityError`` is raised and no folder is published.
The folder is written under a temporary name and renamed into place only when complete.

``model.json`` (top-level keys; ``app.training.run`` fills the metadata):
``format_version``, ``version``, ``created_at``, ``method``; ``architecture`` (backbone, n_stages,
n_exits, exit_stage, exit_names, heads, ``served``: early_exit | final_exit); ``input`` (name, layout,
dtype, channels, height, width); ``preprocessing`` (color_mode, resize, scale, mean, std, formula);
``output`` (logit → sigmoid); ``exit_costs`` (fraction of the full network's multiply-adds per exit,
last 1.0) and ``exit_macs``; ``operating_threshold`` (+ ``operating_threshold_rule``);
``exit_thresholds`` (θ per exit, ``null`` = never leave there; the last is always ``null``) and
``exit_policy`` (confidence rule, criterion, candidates examined); ``training`` (config, seed, device,
mixed precision, selection rule, best epoch, groups, validation metrics, per-epoch history);
``graphs`` (``stages``: file, inputs, outputs, exits per stage graph; ``full``); ``parity``;
``files`` (name → sha256, bytes, for every file but model.json); ``versions`` (python, torch, onnx,
onnxruntime, opset).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from app.core.errors import ConflictError
from app.modelpkg.onnx_chain import GraphSpec, OnnxChain, make_session, sigmoid
from app.serving.integrity import sha256_file
from app.training.networks import MultiExitNet
from app.training.thresholds import exit_index

MANIFEST = "model.json"
FORMAT_VERSION = 1
PARITY_TOLERANCE = 1e-4
PARITY_BATCHES = (1, 8)


class ExportParityError(RuntimeError):
    """ONNX Runtime does not reproduce PyTorch closely enough; the model must not be served."""


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
    return stages, GraphSpec("full.onnx", ("image",), ("logits",), tuple(range(net.n_exits)))


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
    stage_specs, full_spec = graph_specs(net)
    sessions = [make_session(folder / s.file) for s in stage_specs]
    full = make_session(folder / full_spec.file)
    worst = {"stage": 0.0, "chain": 0.0, "full": 0.0}
    for size in PARITY_BATCHES:
        x = np.ascontiguousarray(np.resize(images, (size, *images.shape[1:])), dtype=np.float32)
        feats, chained, expected = torch.from_numpy(x), x, []
        with torch.no_grad():
            for j, (session, spec) in enumerate(zip(sessions, stage_specs, strict=True)):
                ref_input = feats.numpy()
                feats, logits = net.forward_segment(j, feats)
                ref = torch.sigmoid(logits).numpy()
                expected.append(ref)
                worst["stage"] = max(worst["stage"], _diff(session.run(None, {spec.inputs[0]: ref_input})[-1], ref))
                outs = session.run(None, {spec.inputs[0]: chained})
                worst["chain"] = max(worst["chain"], _diff(outs[-1], ref))
                chained = outs[0]
        ref_all = np.concatenate(expected, axis=1)
        worst["full"] = max(worst["full"], _diff(full.run(None, {"image": x})[0], ref_all))
        decided = OnnxChain(sessions, stage_specs, thresholds).run(x).exit_index
        expected_exit = exit_index(ref_all, thresholds)
        conf = np.maximum(ref_all, 1 - ref_all)[:, :-1]
        theta = np.array([np.inf if t is None else t for t in thresholds[:-1]])
        clear = ~(np.abs(conf - theta) <= PARITY_TOLERANCE).any(axis=1)
        if not np.array_equal(decided[clear], expected_exit[clear]):
            raise ExportParityError(f"early-exit decisions differ from PyTorch at batch {size}")
    if max(worst.values()) > PARITY_TOLERANCE:
        raise ExportParityError(f"ONNX Runtime differs from PyTorch by up to {max(worst.values()):.2e}: {worst}")
    return worst


def _diff(onnx_logits: np.ndarray, torch_probs: np.ndarray) -> float:
    """Max abs difference of probabilities."""
    return float(np.abs(sigmoid(onnx_logits) - torch_probs).max())


def export_model(
    net: MultiExitNet,
    folder: Path,
    *,
    parity_images: np.ndarray,
    exit_thresholds: Sequence[float | None],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Write the graphs and ``model.json`` (``metadata`` + graphs, hashes, parity, versions) to ``folder``.

    ``parity_images``: normalised float32 NCHW samples (validation images) for the parity check.
    ``exit_thresholds``: θ per exit (final head None) the chained decisions are checked with.
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
        parity = _parity(model, tmp, parity_images, exit_thresholds)
        opset = {o.domain or "ai.onnx": o.version for o in onnx.load(str(tmp / full_spec.file)).opset_import}
        manifest = {
            "format_version": FORMAT_VERSION,
            **metadata,
            "graphs": {
                "stages": [s.to_json() for s in stage_specs],
                "full": full_spec.to_json(),
                "batch_dimension": "dynamic",
            },
            "parity": {"max_abs_prob_diff": parity, "tolerance": PARITY_TOLERANCE, "batches": PARITY_BATCHES},
            "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())},
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "opset": opset,
            },
        }
        text = json.dumps(manifest, indent=2, allow_nan=False)
        (tmp / MANIFEST).write_text(text)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(json.loads(text))  # exactly what the file says
