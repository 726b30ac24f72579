"""One multi-exit network for every method: a staged backbone, exit heads, and a cost per exit.

Exits (paper layout, Chiu et al.): an internal classifier (IC) after each of the four stages plus the
final head, which reads the same last-stage features as the fourth IC — 5 exits, the final head last.
Single-exit methods (``erm``, ``pairwise_eo``) build the same backbone with the final head only.

IC head (paper): conv3×3(C→64) → adaptive avg-pool → conv3×3(64→32) → global pool → linear.
Deviations, for cost: the adaptive pool is to ``ic_pool``×``ic_pool`` (default 4, never above the
stage's own map) instead of the reference code's 64×64, which upsamples small maps; the convs pad by 1
and a ReLU follows each (the reference head has none and is therefore linear). The final head is global
average pool → linear for every backbone (for VGG-11 this replaces torchvision's 120M-parameter
classifier).

A cheap IC head (``ic_head="pooled"``, not the paper's): the same layers in another order, adaptive
avg-pool to p×p *first*, then conv3×3(C→64) → ReLU → conv3×3(64→32) → ReLU → global pool → linear, so
both convs run on the p×p map instead of the stage's full map (its first conv costs p²/side² of the
paper's). Same parameters and names, so a state dict fits either head: the kind is recorded beside it.

Every exit outputs ``task.width`` logits (``app.modelpkg.task``): one for a binary task
(sigmoid → probability of the positive class; ``forward`` returns ``(N, n_exits)`` as it always did),
K class logits (softmax) or F finding logits (sigmoid each) otherwise, ``forward`` then returning
``(N, n_exits, width)``. A binary network's layers and initialisation are unchanged by this.

The network is exported and run as *segments*: consecutive stages ending where an exit reads them.
A multi-exit model has four segments (exits {0}, {1}, {2}, {3, 4}); a single-exit model has one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from app.core.errors import InputError
from app.modelpkg.manifest import DEFAULT_IC_HEAD, IcHeadKind
from app.modelpkg.task import BINARY, Task
from app.training.backbones import StagedBackbone, adapt_first_conv, build_backbone, torch_load_state_dict


class ICHead(nn.Module):
    def __init__(self, channels: int, pool: int, width: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.conv2 = nn.Conv2d(64, 32, 3, padding=1)
        self.fc = nn.Linear(32, width)

    def embed(self, x: Tensor) -> Tensor:
        """The features the fairness terms read at this exit: the first conv's output after pooling."""
        return self.pool(torch.relu(self.conv1(x)))

    def classify(self, features: Tensor) -> Tensor:
        x = torch.relu(self.conv2(features))
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.embed(x))


class PooledICHead(ICHead):
    """The cheap IC head: pool the stage's map to p×p first, so both convs run on the small map."""

    def embed(self, x: Tensor) -> Tensor:
        """The first conv's output (on the pooled map): the same shape as the paper head's features."""
        return torch.relu(self.conv1(self.pool(x)))


IC_HEADS: dict[str, type[ICHead]] = {"paper": ICHead, "pooled": PooledICHead}


class FinalHead(nn.Module):
    def __init__(self, channels: int, width: int = 1) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, width)

    def embed(self, x: Tensor) -> Tensor:
        """The penultimate features: the last stage globally pooled."""
        return x.mean(dim=(2, 3))

    def classify(self, features: Tensor) -> Tensor:
        return self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.embed(x))


@dataclass(frozen=True)
class Segment:
    first_stage: int
    last_stage: int
    exits: tuple[int, ...]


class MultiExitNet(nn.Module):
    """Backbone + exit heads. ``forward`` returns every exit's logits: ``(N, n_exits)`` for a binary
    task, ``(N, n_exits, task.width)`` otherwise."""

    def __init__(
        self,
        backbone: StagedBackbone,
        *,
        multi_exit: bool,
        image_size: int,
        ic_pool: int,
        task: Task = BINARY,
        ic_head: IcHeadKind = DEFAULT_IC_HEAD,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.image_size = image_size
        self.task = task
        width = task.width
        last = backbone.n_stages - 1
        if multi_exit:
            sides = stage_sides(backbone, image_size)
            self.ic_pool_sizes = tuple(min(ic_pool, s) for s in sides)
            self.ic_head: IcHeadKind | None = ic_head
            head = IC_HEADS[ic_head]
            ics = [head(c, p, width) for c, p in zip(backbone.stage_channels, self.ic_pool_sizes, strict=True)]
            self.heads = nn.ModuleList([*ics, FinalHead(backbone.stage_channels[-1], width)])
            self.exit_stage: tuple[int, ...] = (*range(backbone.n_stages), last)
            self.segments = tuple(
                Segment(i, i, tuple(e for e, s in enumerate(self.exit_stage) if s == i))
                for i in range(backbone.n_stages)
            )
        else:
            self.ic_pool_sizes = ()
            self.ic_head = None
            self.heads = nn.ModuleList([FinalHead(backbone.stage_channels[-1], width)])
            self.exit_stage = (last,)
            self.segments = (Segment(0, last, (0,)),)

    @property
    def n_exits(self) -> int:
        return len(self.heads)

    def segment_features(self, index: int, x: Tensor) -> Tensor:
        seg = self.segments[index]
        for stage in range(seg.first_stage, seg.last_stage + 1):
            x = self.backbone.forward_stage(stage, x)
        return x

    def forward_segment(self, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run one segment: its features (input of the next) and its exits' logits, ``(N, k)`` for a
        binary task and ``(N, k, width)`` otherwise."""
        x = self.segment_features(index, x)
        logits = [self.heads[e](x) for e in self.segments[index].exits]
        if self.task.kind == "binary":
            return x, torch.cat(logits, dim=1)
        return x, torch.stack(logits, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        logits = []
        for j in range(len(self.segments)):
            x, out = self.forward_segment(j, x)
            logits.append(out)
        return torch.cat(logits, dim=1)

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``forward``'s logits (the same operations, so the same numbers) plus the features feeding
        each exit, flattened to ``(N, D_e)`` (docs/methods.md 2a). Only runs that train a feature term
        call it; ``forward`` (and the exported graphs) stay as they are."""
        logits, features = [], []
        for j, seg in enumerate(self.segments):
            x = self.segment_features(j, x)
            for e in seg.exits:
                head = cast(ICHead | FinalHead, self.heads[e])
                embedded = head.embed(x)
                features.append(embedded.flatten(1))
                logits.append(head.classify(embedded))
        if self.task.kind == "binary":
            return torch.cat(logits, dim=1), features
        return torch.stack(logits, dim=1), features


def stage_sides(backbone: StagedBackbone, image_size: int) -> list[int]:
    """Spatial side of each stage's output for a square input (one dummy forward, BN stats untouched)."""
    x = torch.zeros(1, backbone.in_channels, image_size, image_size)
    sides = []
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        for i in range(backbone.n_stages):
            x = backbone.forward_stage(i, x)
            sides.append(int(x.shape[-1]))
    backbone.train(was_training)
    return sides


def build_network(
    backbone: str,
    *,
    in_channels: int,
    image_size: int,
    multi_exit: bool,
    ic_pool: int = 4,
    task: Task = BINARY,
    ic_head: IcHeadKind = DEFAULT_IC_HEAD,
) -> MultiExitNet:
    """``ic_head``: the internal classifiers' layout (``paper`` or the cheap ``pooled``); ignored for one exit."""
    return MultiExitNet(
        build_backbone(backbone, in_channels),
        multi_exit=multi_exit,
        image_size=image_size,
        ic_pool=ic_pool,
        task=task,
        ic_head=ic_head,
    )


def probabilities(logits: Tensor, task: Task) -> Tensor:
    """Each exit's probabilities from its logits (``app.modelpkg.task``): sigmoid for binary and per
    finding, softmax over the classes (the last dimension) for multiclass."""
    if task.kind == "multiclass":
        return torch.softmax(logits.float(), dim=-1)
    return torch.sigmoid(logits.float())


def load_backbone_weights(net: MultiExitNet, path: Path) -> list[str]:
    """Load a backbone state_dict (torchvision names for resnet18/vgg11); returns the keys it ignored.

    Every backbone tensor must be present with its shape (a 3-channel input conv is folded for grey
    input); classifier tensors (``fc.*``, ``classifier.*``) and other extras are ignored.
    """
    field = {"field": "pretrained_weights"}
    try:
        state = torch_load_state_dict(str(path))
    except Exception as exc:  # corrupt file, pickle with code, not a dict
        raise InputError("pretrained weights cannot be read", [{**field, "message": str(exc)}]) from exc
    own = net.backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(
            "pretrained weights do not match the backbone",
            [{**field, "message": f"{len(missing)} tensors missing, e.g. {', '.join(missing[:3])}"}],
        )
    chosen = {}
    for key, target in own.items():
        if key not in state:
            continue
        value = state[key]
        if key == net.backbone.first_conv_key:
            value = adapt_first_conv(value, net.backbone.in_channels)
        if value.shape != target.shape:
            raise InputError(
                "pretrained weights do not match the backbone",
                [{**field, "message": f"{key}: shape {tuple(value.shape)}, expected {tuple(target.shape)}"}],
            )
        chosen[key] = value
    net.backbone.load_state_dict(chosen, strict=False)
    return sorted(set(state) - set(chosen))


@contextmanager
def _count_macs(module: nn.Module) -> Iterator[list[int]]:
    """Multiply-adds of every conv and linear layer run inside the block (per sample of the input)."""
    total = [0]

    def hook(layer: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        per_sample = out.numel() // out.shape[0]
        if isinstance(layer, nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
            total[0] += per_sample * k
        elif isinstance(layer, nn.Linear):
            total[0] += per_sample * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class ExitCosts:
    """Multiply-adds spent by a sample leaving at each exit (its segments and every head run on the way)."""

    segment_macs: tuple[int, ...]
    head_macs: tuple[int, ...]
    exit_macs: tuple[int, ...]

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(m / self.exit_macs[-1] for m in self.exit_macs)


def exit_costs(net: MultiExitNet) -> ExitCosts:
    """Count conv/linear multiply-adds analytically via hooks on one dummy input (BN, ReLU, pools ignored)."""
    x = torch.zeros(1, net.backbone.in_channels, net.image_size, net.image_size)
    segment_macs, head_macs = [], [0] * net.n_exits
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for j, seg in enumerate(net.segments):
            with _count_macs(net.backbone) as count:
                x = net.segment_features(j, x)
            segment_macs.append(count[0])
            for e in seg.exits:
                with _count_macs(net.heads[e]) as count:
                    net.heads[e](x)
                head_macs[e] = count[0]
    net.train(was_training)
    exit_segment = {e: j for j, seg in enumerate(net.segments) for e in seg.exits}
    exit_macs = tuple(sum(segment_macs[: exit_segment[e] + 1]) + sum(head_macs[: e + 1]) for e in range(net.n_exits))
    return ExitCosts(tuple(segment_macs), tuple(head_macs), exit_macs)
