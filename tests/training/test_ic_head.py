"""The cheap internal-classifier head (``ic_head: pooled``): fewer multiply-adds, the same parameters,
recorded in model.json, exported with parity, and older files read as the paper's head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from training_helpers import small_config, write_cohort

from app.cohorts.cache import load_cohort_arrays
from app.core.errors import InputError
from app.modelpkg.folder import read_manifest
from app.modelpkg.manifest import MANIFEST_FILE, Architecture, parse_manifest
from app.modelpkg.onnx_chain import make_session
from app.training import TrainingResult, run_training
from app.training.data import Normalizer
from app.training.networks import PooledICHead, build_network, exit_costs
from app.training.teacher import load_teacher


def conv_macs(side: int, c_in: int, c_out: int) -> int:
    """Multiply-adds of a padded 3×3 conv on a side × side map."""
    return side * side * c_out * c_in * 9


def test_the_pooled_head_runs_its_convs_on_the_pooled_map() -> None:
    """Counted with forward hooks (``exit_costs``) and checked against the formula: at 64 px the small
    backbone's stages give 32/16/8/4-pixel maps of 16/32/64/128 channels, every IC pools to 4."""
    paper = exit_costs(build_network("small", in_channels=3, image_size=64, multi_exit=True))
    net = build_network("small", in_channels=3, image_size=64, multi_exit=True, ic_head="pooled")
    pooled = exit_costs(net)
    assert net.ic_head == "pooled" and all(isinstance(h, PooledICHead) for h in list(net.heads)[:4])
    tail = conv_macs(4, 64, 32) + 32  # conv3x3(64->32) on 4×4 and linear(32->1), the same in both heads
    for ic, (side, channels) in enumerate([(32, 16), (16, 32), (8, 64), (4, 128)]):
        assert paper.head_macs[ic] == conv_macs(side, channels, 64) + tail
        assert pooled.head_macs[ic] == conv_macs(4, channels, 64) + tail
    assert pooled.segment_macs == paper.segment_macs  # the backbone is untouched
    # every IC whose stage map is larger than the pool is cheaper; the whole five-exit network by 44 %
    assert all(p < q for p, q in zip(pooled.head_macs[:3], paper.head_macs[:3], strict=True))
    assert pooled.exit_macs[-1] < 0.6 * paper.exit_macs[-1]
    # same parameters under the same names, so a state dict fits either head (hence the recorded kind)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    other = build_network("small", in_channels=3, image_size=64, multi_exit=True).state_dict()
    assert shapes == {k: v.shape for k, v in other.items()}


def test_the_option_is_validated_and_defaults_to_the_paper_head() -> None:
    assert small_config(method="fair_multi_exit").ic_head == "paper"
    for backbone in ("resnet18", "vgg11", "small"):
        assert small_config(method="fair_multi_exit", backbone=backbone).ic_head == "paper"
    with pytest.raises(ValidationError) as caught:
        small_config(method="fair_multi_exit", ic_head="tiny")
    assert [e["loc"] for e in caught.value.errors()] == [("ic_head",)]
    assert build_network("small", in_channels=3, image_size=32, multi_exit=False, ic_head="pooled").ic_head is None


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Path]:
    root = tmp_path_factory.mktemp("pooled")
    write_cohort(root / "cohort", n=240)
    config = small_config(method="fair_multi_exit", epochs=1, ic_head="pooled", keep_weights=True)
    return run_training(root / "cohort", config, root / "work", root / "models", "v1"), root / "cohort"


def test_config_to_manifest_to_loaded_model(pooled_run: tuple[TrainingResult, Path]) -> None:
    result, cohort_dir = pooled_run
    manifest = read_manifest(result.model_path)  # what serving and a teacher read back
    assert manifest == result.manifest
    assert manifest.architecture.ic_head_kind == "pooled"
    assert manifest.architecture.ic_head is not None and manifest.architecture.ic_head.startswith("adaptive avg-pool")
    assert manifest.training is not None and manifest.training.config["ic_head"] == "pooled"
    pooled_net = build_network("small", in_channels=3, image_size=32, multi_exit=True, ic_head="pooled")
    assert manifest.exit_macs == list(exit_costs(pooled_net).exit_macs)
    # export parity passed with the pooled head (the export refuses to publish otherwise)
    assert max(manifest.parity.max_abs_prob_diff.model_dump().values()) <= manifest.parity.tolerance

    # the exported graphs are the pooled head: the kept weights reproduce them in a pooled network only
    cohort = load_cohort_arrays(cohort_dir)
    pixels = torch.from_numpy(np.asarray(cohort.images[cohort.indices("test")[:8]])).permute(0, 3, 1, 2)
    images = Normalizer(3, torch.device("cpu"))(pixels).contiguous()
    onnx_logits = make_session((result.model_path / "full.onnx").read_bytes()).run(None, {"image": images.numpy()})[0]
    config = small_config(method="fair_multi_exit", ic_head="pooled")
    loaded = load_teacher(result.model_path, config, pooled_net)
    with torch.no_grad():
        np.testing.assert_allclose(torch.sigmoid(loaded(images)).numpy(), 1 / (1 + np.exp(-onnx_logits)), atol=1e-4)
        paper_net = build_network("small", in_channels=3, image_size=32, multi_exit=True)
        paper_net.load_state_dict(loaded.state_dict())  # fits: same parameters
        assert not np.allclose(paper_net.eval()(images)[:, :3].numpy(), onnx_logits[:, :3], atol=1e-3)
    with pytest.raises(InputError) as refused:  # a paper-head student must not distil from these weights
        load_teacher(result.model_path, small_config(method="fair_multi_exit"), paper_net)
    assert "IC head is pooled" in refused.value.errors[0]["message"]


def test_a_manifest_without_the_field_reads_as_the_paper_head(pooled_run: tuple[TrainingResult, Path]) -> None:
    result, _ = pooled_run
    data = json.loads((result.model_path / MANIFEST_FILE).read_text())
    del data["architecture"]["ic_head_kind"]
    assert parse_manifest(json.dumps(data), "older").architecture.ic_head_kind == "paper"
    single = {**data["architecture"], "n_exits": 1, "ic_head": None, "ic_pool_sizes": []}
    assert Architecture.model_validate(single).ic_head_kind is None
    with pytest.raises(ValidationError):  # a kind without IC heads contradicts itself
        Architecture.model_validate({**single, "ic_head_kind": "pooled"})
    with pytest.raises(ValidationError):
        Architecture.model_validate({**data["architecture"], "ic_head_kind": "tiny"})
