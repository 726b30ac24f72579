"""Small seeded model folders (multiclass, multilabel, and binary for comparison) for the serving
tests, written without training.

Each folder is a complete, verifiable model folder (``model.json`` with hashes) whose graphs follow
the model format: two stage graphs and a full graph, logits shaped ``(batch, exits, width)`` for
multiclass and multilabel tasks, ``(batch, exits)`` for a binary one. Each exit is a seeded linear
map of the flattened normalised image, so the two exits disagree and some images leave early. Built
with ``onnx.helper`` (no PyTorch, milliseconds): until ``app.training.export`` writes K-output graphs
this stands in for it in serving tests.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from app.modelpkg.folder import file_entries, write_manifest
from app.modelpkg.manifest import (
    FORMAT_VERSION,
    Architecture,
    Decision,
    Graphs,
    GraphSpec,
    InputSpec,
    ModelManifest,
    OutputSpec,
    Parity,
    ParityDiffs,
    Versions,
)
from app.modelpkg.preprocessing import Preprocessing
from app.modelpkg.task import Task

SIZE, CHANNELS, OPSET = 16, 3, 17
PROBABILITY = {"multiclass": "softmax(logits)", "multilabel": "sigmoid(logit) per finding"}


@dataclass(frozen=True)
class ClassModel:
    folder: Path
    manifest: ModelManifest
    weights: list[np.ndarray]  # per exit, (C*H*W, width)


def _linear_exit(name: str, source: str, weight: np.ndarray, bias: np.ndarray, binary: bool) -> tuple[list, list]:
    """Nodes and initialisers for one exit's logits = flatten(source) @ weight + bias: (N, 1) for a
    binary task (one logit per exit), (N, 1, width) otherwise."""
    inits = [
        numpy_helper.from_array(weight, f"{name}_w"),
        numpy_helper.from_array(bias, f"{name}_b"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), f"{name}_axis"),
    ]
    nodes = [
        helper.make_node("Flatten", [source], [f"{name}_flat"], axis=1),
        helper.make_node("Gemm", [f"{name}_flat", f"{name}_w", f"{name}_b"], [f"{name}_logits"]),
        helper.make_node(
            "Identity" if binary else "Unsqueeze",
            [f"{name}_logits", f"{name}_axis"][: 1 if binary else 2],
            [f"{name}_out"],
        ),
    ]
    return nodes, inits


def _graph(name: str, input_name: str, outputs: list[tuple[str, list, list, list[str], int]]) -> onnx.ModelProto:
    image = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", CHANNELS, SIZE, SIZE])
    nodes, inits, values = [], [], []
    for out_name, out_nodes, out_inits, parts, width in outputs:
        nodes += out_nodes
        inits += out_inits
        if out_name == "next_features":
            nodes.append(helper.make_node("Identity", [input_name], [out_name]))
            values.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", CHANNELS, SIZE, SIZE]))
            continue
        nodes.append(helper.make_node("Concat", parts, [out_name], axis=1))
        shape = ["batch", len(parts)] if width == 0 else ["batch", len(parts), width]
        values.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, shape))
    model = helper.make_model(
        helper.make_graph(nodes, name, [image], values, inits), opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_class_model(
    folder: Path,
    task: Task,
    decision: Decision | None,
    *,
    exit_theta: float,
    seed: int = 0,
    scale: float = 4.0,
    operating_threshold: float | None = None,
    version: str = "mdl_classes",
) -> ClassModel:
    """A two-exit model folder for ``task`` with ``decision`` (a binary task: ``operating_threshold``
    and no decision); a sample leaves at exit 0 when its confidence reaches ``exit_theta``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    binary = task.kind == "binary"
    width, features = task.width, CHANNELS * SIZE * SIZE
    shape_width = 0 if binary else width  # graph outputs: (N, exits) binary, (N, exits, width) otherwise
    weights = [(rng.normal(size=(features, width)) * scale / np.sqrt(features)).astype(np.float32) for _ in range(2)]
    biases = [(rng.normal(size=width) * 0.3).astype(np.float32) for _ in range(2)]
    exits = [
        _linear_exit(f"exit{e}", "image" if e == 0 else "features", weights[e], biases[e], binary) for e in range(2)
    ]
    stage0 = _graph(
        "stage_0",
        "image",
        [("next_features", [], [], [], shape_width), ("logits", *exits[0], ["exit0_out"], shape_width)],
    )
    stage1 = _graph("stage_1", "features", [("logits", *exits[1], ["exit1_out"], shape_width)])
    full_exits = [_linear_exit(f"exit{e}", "image", weights[e], biases[e], binary) for e in range(2)]
    full_nodes = [n for nodes, _ in full_exits for n in nodes]
    full_inits = [i for _, inits in full_exits for i in inits]
    full = _graph("full", "image", [("logits", full_nodes, full_inits, ["exit0_out", "exit1_out"], shape_width)])
    for name, graph in (("stage_0.onnx", stage0), ("stage_1.onnx", stage1), ("full.onnx", full)):
        onnx.save(graph, str(folder / name))
    manifest = ModelManifest(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=datetime.now(UTC),
        method="erm",
        task=task,
        architecture=Architecture(
            backbone="small",
            n_stages=2,
            n_exits=2,
            exit_stage=[0, 1],
            exit_names=["ic1", "final"],
            ic_head="flatten, linear(768->width)",
            ic_pool_sizes=[SIZE],
            final_head="flatten, linear(768->width)",
            served="early_exit",
        ),
        input=InputSpec(channels=CHANNELS, height=SIZE, width=SIZE),
        preprocessing=Preprocessing.for_image(CHANNELS, SIZE),
        output=OutputSpec()
        if binary
        else OutputSpec(probability=PROBABILITY[task.kind], positive_label=None, width=width),  # type: ignore[arg-type]
        exit_costs=[0.5, 1.0],
        exit_macs=[features * width, 2 * features * width],
        operating_threshold=operating_threshold,
        operating_threshold_rule=None,
        decision=decision,
        exit_thresholds=[exit_theta, None],
        exit_policy=None,
        training=None,
        graphs=Graphs(
            stages=[
                GraphSpec(file="stage_0.onnx", inputs=("image",), outputs=("next_features", "logits"), exits=(0,)),
                GraphSpec(file="stage_1.onnx", inputs=("features",), outputs=("logits",), exits=(1,)),
            ],
            full=GraphSpec(file="full.onnx", inputs=("image",), outputs=("logits",), exits=(0, 1)),
        ),
        parity=Parity(max_abs_prob_diff=ParityDiffs(stage=0.0, chain=0.0, full=0.0), tolerance=1e-4, batches=[1]),
        files=file_entries(folder),
        versions=Versions(
            python=platform.python_version(),
            torch="none",
            onnx=onnx.__version__,
            onnxruntime=ort.__version__,
            opset={"ai.onnx": OPSET},
        ),
    )
    write_manifest(folder, manifest)
    return ClassModel(folder, manifest, weights)
