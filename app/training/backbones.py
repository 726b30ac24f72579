"""Backbones cut into four stages, in plain PyTorch (no torchvision at run time).

``resnet18`` and ``vgg11`` keep torchvision's module layout and parameter names (``conv1``,
``layer1.0.bn2``, ``features.3`` …) so a torchvision-format state_dict loads as it is; their
classifiers (``fc``, ``classifier``) are not part of the backbone: the exit heads replace them.
``small`` is a 16-32-64-128 CNN fast enough for CPU tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class StagedBackbone(nn.Module, ABC):
    """A feature extractor run stage by stage; an exit head may follow any stage."""

    stage_channels: tuple[int, int, int, int]
    in_channels: int
    #: state_dict key of the input convolution (adapted when a 3-channel checkpoint meets 1-channel input)
    first_conv_key: str

    @abstractmethod
    def forward_stage(self, index: int, x: Tensor) -> Tensor: ...

    @property
    def n_stages(self) -> int:
        return len(self.stage_channels)


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (same attribute names)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(StagedBackbone):
    """ResNet-18; stage i is layer(i+1), the stem (conv1 … maxpool) runs with stage 0."""

    stage_channels = (64, 128, 256, 512)
    first_conv_key = "conv1.weight"

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for block in self.modules():
            if isinstance(block, BasicBlock):  # zero-init the residual's last BN, as torchvision offers
                nn.init.zeros_(block.bn2.weight)

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        if index == 0:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        layer: nn.Module = (self.layer1, self.layer2, self.layer3, self.layer4)[index]
        return layer(x)


class VGG11(StagedBackbone):
    """VGG-11 (configuration A, no batch norm); stages end at its last four max-pools (features 5, 10,
    15 and 20)."""

    stage_channels = (128, 256, 512, 512)
    first_conv_key = "features.0.weight"
    _CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    _STAGE_ENDS = (6, 11, 16, 21)  # exclusive ends in ``features``

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        start = 0 if index == 0 else self._STAGE_ENDS[index - 1]
        for j in range(start, self._STAGE_ENDS[index]):
            x = self.features[j](x)
        return x


class SmallCNN(StagedBackbone):
    """Four conv-BN-ReLU-maxpool stages (16-32-64-128 channels): seconds per epoch on a CPU."""

    stage_channels = (16, 32, 64, 128)
    first_conv_key = "stages.0.0.weight"

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        chans = (in_channels, *self.stage_channels)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            for i in range(4)
        )

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        return self.stages[index](x)


BACKBONE_CLASSES: dict[str, type[StagedBackbone]] = {"resnet18": ResNet18, "vgg11": VGG11, "small": SmallCNN}


def build_backbone(name: str, in_channels: int) -> StagedBackbone:
    return BACKBONE_CLASSES[name](in_channels)


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Fold an RGB checkpoint's input filters for grey input: summing keeps responses to grey = R=G=B."""
    if weight.shape[1] == 3 and in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    return weight


def torch_load_state_dict(path: str) -> dict[str, Tensor]:
    """Read a state_dict (tensors only, never pickled code), unwrapping common containers."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ValueError("the file does not hold a state_dict")
    return {k.removeprefix("module."): v for k, v in loaded.items() if isinstance(v, Tensor)}
