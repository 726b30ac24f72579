"""Backbones, exit layout, exit costs and loading torchvision-style weights."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from app.core.errors import InputError
from app.training.backbones import ResNet18
from app.training.networks import build_network, exit_costs, load_backbone_weights


@pytest.mark.parametrize("backbone", ["resnet18", "vgg11", "small"])
@pytest.mark.parametrize("channels", [1, 3])
def test_backbones_build_and_run_every_exit(backbone: str, channels: int) -> None:
    net = build_network(backbone, in_channels=channels, image_size=32, multi_exit=True).eval()
    with torch.no_grad():
        logits = net(torch.randn(2, channels, 32, 32))
    assert logits.shape == (2, 5)
    assert [s.exits for s in net.segments] == [(0,), (1,), (2,), (3, 4)]
    single = build_network(backbone, in_channels=channels, image_size=32, multi_exit=False).eval()
    with torch.no_grad():
        assert single(torch.randn(2, channels, 32, 32)).shape == (2, 1)


def test_segments_chain_to_the_full_forward() -> None:
    net = build_network("small", in_channels=3, image_size=32, multi_exit=True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        outs, feats = [], x
        for j in range(len(net.segments)):
            feats, logits = net.forward_segment(j, feats)
            outs.append(logits)
        assert torch.equal(torch.cat(outs, 1), net(x))


def test_exit_costs_grow_to_one() -> None:
    costs = exit_costs(build_network("resnet18", in_channels=3, image_size=64, multi_exit=True))
    fractions = costs.fractions
    assert fractions[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(fractions))
    # ResNet-18 at 64 px: about 148M multiply-adds in the backbone (1.8G at 224 px, scaled by area)
    assert 140e6 < sum(costs.segment_macs) < 156e6


def torchvision_style_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A resnet18 state_dict as torchvision writes it: backbone names plus a 1000-class ``fc``."""
    state = ResNet18(3).state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    torch.save(state, path)
    return state


def test_resnet18_loads_a_torchvision_style_state_dict(tmp_path: Path) -> None:
    state = torchvision_style_checkpoint(tmp_path / "resnet18.pth")
    net = build_network("resnet18", in_channels=3, image_size=32, multi_exit=True)
    ignored = load_backbone_weights(net, tmp_path / "resnet18.pth")
    assert ignored == ["fc.bias", "fc.weight"]
    loaded = net.backbone.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)


def test_rgb_weights_fold_into_a_grey_input_conv(tmp_path: Path) -> None:
    state = torchvision_style_checkpoint(tmp_path / "resnet18.pth")
    net = build_network("resnet18", in_channels=1, image_size=32, multi_exit=False)
    load_backbone_weights(net, tmp_path / "resnet18.pth")
    folded = net.backbone.state_dict()["conv1.weight"]
    assert torch.allclose(folded, state["conv1.weight"].sum(1, keepdim=True))


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    torch.save(
        build_network("small", in_channels=3, image_size=32, multi_exit=False).backbone.state_dict(),
        tmp_path / "small.pth",
    )
    net = build_network("resnet18", in_channels=3, image_size=32, multi_exit=False)
    with pytest.raises(InputError) as err:
        load_backbone_weights(net, tmp_path / "small.pth")
    assert err.value.errors[0]["field"] == "pretrained_weights"
