"""Model folders of multiclass and multilabel networks: K outputs per exit in every graph, the task and
decision in ``model.json``, and the provenance rule of non-binary models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelpkg_helpers import SIZE, export_tiny

from app.modelpkg.errors import ManifestError
from app.modelpkg.folder import read_manifest
from app.modelpkg.manifest import parse_manifest
from app.modelpkg.onnx_chain import make_session
from app.modelpkg.task import Task
from app.training.export import ExportedModel

MULTICLASS = Task(kind="multiclass", classes=["a", "b", "c"])
MULTILABEL = Task(kind="multilabel", classes=["x", "y"])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ExportedModel]]:
    root = tmp_path_factory.mktemp("models")
    return {
        task.kind: (root / task.kind, export_tiny(root / task.kind, task=task)) for task in (MULTICLASS, MULTILABEL)
    }


@pytest.mark.parametrize(
    ("task", "probability"), [(MULTICLASS, "softmax(logits)"), (MULTILABEL, "sigmoid(logit) per finding")]
)
def test_every_graph_returns_width_logits_per_exit(
    folders: dict[str, tuple[Path, ExportedModel]], task: Task, probability: str
) -> None:
    folder, exported = folders[task.kind]
    manifest = read_manifest(folder)
    assert manifest == exported.manifest and manifest.task == task
    assert (manifest.output.width, manifest.output.probability) == (task.width, probability)
    assert manifest.parity.max_abs_prob_diff.full <= manifest.parity.tolerance
    x = np.random.default_rng(0).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)
    full = make_session((folder / "full.onnx").read_bytes())
    assert full.run(None, {"image": x})[0].shape == (3, 5, task.width)
    stage = make_session((folder / manifest.graphs.stages[-1].file).read_bytes())
    features = x
    for spec in manifest.graphs.stages[:-1]:
        features = make_session((folder / spec.file).read_bytes()).run(None, {spec.inputs[0]: features})[0]
    assert stage.run(None, {"features": features})[0].shape == (3, 2, task.width)


def test_a_non_binary_model_records_no_operating_threshold_rule(
    folders: dict[str, tuple[Path, ExportedModel]],
) -> None:
    data = json.loads((folders["multiclass"][0] / "model.json").read_text())
    data["operating_threshold_rule"] = {"rule": "youden", "target_specificity": None}
    with pytest.raises(ManifestError, match="multiclass model has no operating_threshold_rule"):
        parse_manifest(json.dumps(data), "model.json")


def test_files_written_before_the_task_fields_still_load(tmp_path: Path) -> None:
    """A binary model.json without the keys this issue added (task, decision, the multiclass metrics)."""
    export_tiny(tmp_path / "v1")
    data = json.loads((tmp_path / "v1" / "model.json").read_text())
    for key in ("task", "decision"):
        del data[key]
    del data["output"]["width"]
    assert parse_manifest(json.dumps(data), "model.json").task.kind == "binary"
