"""End to end: ``run_training`` publishes a model folder whose ONNX graphs reproduce the evaluation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from training_helpers import small_config, write_cohort

from app.cohorts.cache import CohortArrays, load_cohort_arrays
from app.core.errors import ConflictError
from app.fairness.engine.thresholds import exit_index
from app.modelpkg.folder import read_manifest
from app.modelpkg.onnx_chain import OnnxChain, make_session
from app.training import ExportParityError, ProgressEvent, TrainingResult, run_training
from app.training.data import Normalizer
from app.training.export import _SegmentGraph, describe_model, export_model, graph_specs
from app.training.networks import build_network


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, n=400)
    return folder


@pytest.fixture(scope="module")
def trained(cohort_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, list[ProgressEvent]]:
    root = tmp_path_factory.mktemp("run")
    events: list[ProgressEvent] = []
    config = small_config(method="fair_multi_exit_pairwise_eo", epochs=3, exit_criterion="min_compute")
    result = run_training(cohort_dir, config, root / "work", root / "models", "v1", progress=events.append)
    return result, events


def normalized(cohort: CohortArrays, index: np.ndarray) -> np.ndarray:
    images = torch.from_numpy(np.asarray(cohort.images[index])).permute(0, 3, 1, 2)
    return Normalizer(cohort.channels, torch.device("cpu"))(images).contiguous().numpy()


class CountingSession:
    """Wraps an ONNX Runtime session and records the batch size of every call."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.rows: list[int] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.rows.append(len(next(iter(feeds.values()))))
        return self.session.run(outputs, feeds)


def test_model_folder_lists_every_file_with_its_hash(trained: tuple[TrainingResult, list]) -> None:
    result, _ = trained
    folder = result.model_path
    assert read_manifest(folder) == result.manifest
    assert result.manifest_sha256 == hashlib.sha256((folder / "model.json").read_bytes()).hexdigest()
    manifest = result.manifest.model_dump(mode="json")
    files = {"stage_0.onnx", "stage_1.onnx", "stage_2.onnx", "stage_3.onnx", "full.onnx"}
    assert set(manifest["files"]) == files == {p.name for p in folder.iterdir()} - {"model.json"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert [g["exits"] for g in manifest["graphs"]["stages"]] == [[0], [1], [2], [3, 4]]
    assert manifest["graphs"]["stages"][1]["inputs"] == ["features"]
    assert manifest["graphs"]["stages"][0]["outputs"] == ["next_features", "logits"]
    assert manifest["input"] == {
        "name": "image",
        "layout": "NCHW",
        "dtype": "float32",
        "channels": 3,
        "height": 32,
        "width": 32,
    }
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert manifest["exit_costs"][-1] == 1.0 and len(manifest["exit_costs"]) == 5
    assert manifest["exit_thresholds"] == result.exit_thresholds and manifest["exit_thresholds"][-1] is None
    assert manifest["operating_threshold"] == result.operating_threshold
    assert manifest["training"]["config"]["method"] == "fair_multi_exit_pairwise_eo"
    assert manifest["training"]["seed"] == 0 and len(manifest["training"]["history"]) == 3
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime"}
    assert max(manifest["parity"]["max_abs_prob_diff"].values()) <= 1e-4
    assert not list(folder.parent.glob(".*partial"))


def test_onnx_graphs_reproduce_the_test_predictions(trained: tuple[TrainingResult, list], cohort_dir: Path) -> None:
    result, _ = trained
    cohort = load_cohort_arrays(cohort_dir)
    test = cohort.indices("test")
    full = make_session((result.model_path / "full.onnx").read_bytes())
    for size in (1, 8):
        logits = full.run(None, {"image": normalized(cohort, test[:size])})[0]
        probs = 1 / (1 + np.exp(-logits))
        np.testing.assert_allclose(probs, result.test_predictions.exit_scores[:size], atol=1e-4)


def test_early_exit_never_runs_later_stages(trained: tuple[TrainingResult, list], cohort_dir: Path) -> None:
    result, _ = trained
    cohort = load_cohort_arrays(cohort_dir)
    test = cohort.indices("test")
    images = normalized(cohort, test)
    specs, _ = graph_specs(build_network("small", in_channels=3, image_size=32, multi_exit=True))

    def chain(thresholds: list[float | None]) -> tuple[list[CountingSession], Any]:
        sessions = [CountingSession(make_session((result.model_path / s.file).read_bytes())) for s in specs]
        return sessions, OnnxChain(sessions, specs, thresholds).run(images)

    sessions, everyone_early = chain([0.5, 0.5, 0.5, 0.5, None])  # confidence is always >= 0.5
    assert [s.rows for s in sessions] == [[len(test)], [], [], []]
    assert (everyone_early.exit_index == 0).all()

    sessions, served = chain(result.exit_thresholds)
    expected = exit_index(result.test_predictions.exit_scores, result.exit_thresholds)
    np.testing.assert_array_equal(served.exit_index, expected)
    still_running = [int((expected >= min(spec.exits)).sum()) for spec in specs]
    assert [sum(s.rows) for s in sessions] == still_running
    assert served.rows == still_running


def test_prediction_set_for_the_test_split(trained: tuple[TrainingResult, list], cohort_dir: Path) -> None:
    result, _ = trained
    cohort = load_cohort_arrays(cohort_dir)
    test = cohort.indices("test")
    ps = result.test_predictions
    assert ps.exit_scores.shape == (len(test), 5)
    np.testing.assert_array_equal(ps.sample_ids, cohort.item_ids[test])
    np.testing.assert_array_equal(ps.y_true, cohort.labels[test])
    assert set(ps.groups) == {"sex", "age_group"} and None in set(ps.groups["sex"])
    assert ps.exit_cost is not None and ps.exit_cost.tolist() == result.manifest.exit_costs
    np.testing.assert_array_equal(ps.exit_index, exit_index(ps.exit_scores, result.exit_thresholds))
    assert ps.threshold == result.operating_threshold
    assert result.validation["auc"] > 0.7


def test_progress_walks_through_every_phase(trained: tuple[TrainingResult, list]) -> None:
    _, events = trained
    phases = [e.phase for e in events if e.phase != "train"]
    assert phases == ["validate"] * 3 + ["select", "evaluate", "export", "done"]


def test_single_exit_model(cohort_dir: Path, tmp_path: Path) -> None:
    result = run_training(cohort_dir, small_config(epochs=1), tmp_path / "work", tmp_path / "models", "erm")
    assert sorted(result.manifest.files) == ["full.onnx", "stage_0.onnx"]
    assert result.manifest.architecture.served == "final_exit"
    assert result.test_predictions.n_exits == 1 and result.test_predictions.exit_index is None
    assert result.exit_thresholds == [None]


def test_a_parity_failure_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forward = _SegmentGraph.forward
    monkeypatch.setattr(_SegmentGraph, "forward", lambda self, x: forward(self, x) + 0.01)  # type: ignore[operator]
    net = build_network("small", in_channels=3, image_size=32, multi_exit=False).eval()
    images = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32)
    description = describe_model(
        net, backbone="small", version="v1", method="erm", operating_threshold=0.5, exit_thresholds=[None]
    )
    with pytest.raises(ExportParityError):
        export_model(net, tmp_path / "v1", parity_images=images, description=description)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    net = build_network("small", in_channels=3, image_size=32, multi_exit=False)
    description = describe_model(
        net, backbone="small", version="v1", method="erm", operating_threshold=0.5, exit_thresholds=[None]
    )
    with pytest.raises(ConflictError):
        export_model(net, tmp_path / "v1", parity_images=np.zeros((1, 3, 32, 32), np.float32), description=description)
