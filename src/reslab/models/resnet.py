"""Residual and plain networks: one ``ResNet`` class, every variant a line of data.

A plain network is the same class with ``shortcut="none"``: it differs from its residual twin in
the shortcut alone. State-dict keys follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``) so that published weight files load with ``strict=True``.

References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016
    (section 4.2 for the CIFAR networks, Table 1 for the ImageNet ones).
    Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from reslab.models.layers import (
    StochasticDepth,
    check_choice,
    conv1x1,
    conv3x3,
    init_conv_bn,
    make_shortcut,
    norm2d,
    survival_probs,
)

STEMS = ("cifar", "imagenet")


class ResidualBlock(nn.Module):
    """What every post-activation block shares: H(x) = ReLU(F(x) + shortcut(x)).

    Subclasses define ``residual`` (F). ``shortcut`` is the identity, or ``downsample`` where the
    block has one (zero padding or a projection). With ``has_shortcut=False`` the block is a plain
    stack of layers, H(x) = ReLU(F(x)). Implements :class:`reslab.models.protocol.ShortcutBlock`.
    """

    expansion = 1
    post_activation = True  # H = ReLU(F + shortcut); pre-activation blocks add without a ReLU
    last_norm: str  # attribute name of the branch's last normalisation layer
    last_conv: str  # and of its last convolution

    def __init__(self, *, downsample: nn.Module | None, has_shortcut: bool, survival_prob: float,
                 drop_mode: str, changes_shape: bool = False) -> None:
        super().__init__()
        if not has_shortcut and survival_prob < 1.0:
            raise ValueError("stochastic depth needs a shortcut: a plain block cannot be skipped")
        self.downsample = downsample
        self.changes_shape = changes_shape  # output shape differs from the input's (stride or width)
        self.has_shortcut = has_shortcut
        self.drop = StochasticDepth(survival_prob, drop_mode)

    @property
    def survival_prob(self) -> float:
        return self.drop.p

    def residual(self, x: Tensor) -> Tensor:  # F(x)
        raise NotImplementedError

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        if not self.has_shortcut:
            return torch.relu(self.residual(x))
        identity = self.shortcut(x)
        if self.drop.drop_block():  # stochastic depth skipped the whole branch for this batch
            return torch.relu(identity)
        out = self.drop(self.residual(x))  # scaled by p_l at test time
        return torch.relu(out + identity)

    def zero_init_last(self) -> None:
        """Start the block as the identity: zero the last BN scale (Goyal et al. 2017), or, in a network
        without normalisation, the last convolution's weights."""
        norm = getattr(self, self.last_norm)
        if isinstance(norm, nn.BatchNorm2d):
            nn.init.zeros_(norm.weight)
        else:
            nn.init.zeros_(getattr(self, self.last_conv).weight)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions: F(x) = BN(conv(ReLU(BN(conv(x)))))."""

    expansion = 1
    last_norm, last_conv = "bn2", "conv2"

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "A", norm: str = "bn",
                 survival_prob: float = 1.0, drop_mode: str = "batch") -> None:
        super().__init__(
            downsample=make_shortcut(shortcut, in_planes, planes, stride, norm),
            has_shortcut=shortcut != "none", survival_prob=survival_prob, drop_mode=drop_mode,
            changes_shape=stride != 1 or in_planes != planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm2d(norm, planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm2d(norm, planes)

    def residual(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (N, planes, H/stride, W/stride)
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 (reduce) - 3x3 - 1x1 (restore, x4): F(x) for the deeper ImageNet networks.

    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5").
    """

    expansion = 4
    last_norm, last_conv = "bn3", "conv3"

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B", norm: str = "bn",
                 survival_prob: float = 1.0, drop_mode: str = "batch") -> None:
        out_planes = planes * self.expansion
        super().__init__(
            downsample=make_shortcut(shortcut, in_planes, out_planes, stride, norm),
            has_shortcut=shortcut != "none", survival_prob=survival_prob, drop_mode=drop_mode,
            changes_shape=stride != 1 or in_planes != out_planes)
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = norm2d(norm, planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm2d(norm, planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = norm2d(norm, out_planes)

    def residual(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (N, planes, H, W)
        out = torch.relu(self.bn2(self.conv2(out)))  # (N, planes, H/stride, W/stride)
        return self.bn3(self.conv3(out))  # (N, 4 planes, H/stride, W/stride)


def make_stage(block: type[nn.Module], in_planes: int, planes: int, probs: Sequence[float], *, stride: int,
               **block_options) -> nn.Sequential:
    """A stage of ``len(probs)`` blocks; the first one carries the stride, block i survives with probs[i]."""
    blocks = []
    for i, p in enumerate(probs):
        blocks.append(block(in_planes, planes, stride if i == 0 else 1, survival_prob=p, **block_options))
        in_planes = planes * block.expansion
    return nn.Sequential(*blocks)


def add_stages(net: nn.Module, block: type[nn.Module], layers: Sequence[int], widths: Sequence[int], in_planes: int,
               *, survival_prob: float, **block_options) -> tuple[list[str], int]:
    """Add ``layer1``..``layerN`` to ``net`` (stride 1, then 2 at each new stage), with the stochastic-depth
    rule applied over all blocks; returns the stage names and the output channels."""
    probs = survival_probs(sum(layers), survival_prob)
    names, start = [], 0
    for i, (n, planes) in enumerate(zip(layers, widths)):
        stage = make_stage(block, in_planes, planes, probs[start:start + n], stride=1 if i == 0 else 2,
                           **block_options)
        names.append(f"layer{i + 1}")
        net.add_module(names[-1], stage)
        in_planes, start = planes * block.expansion, start + n
    return names, in_planes


class ResNet(nn.Module):
    """Stem, stages of blocks, global average pooling, a fully connected layer.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        widths: ``planes`` per stage (the block's output has ``planes * expansion`` channels).
        num_classes: size of the output.
        stem: ``"cifar"`` (3x3 conv, stride 1: He et al. section 4.2, and the small-input option of the
            ImageNet networks) or ``"imagenet"`` (7x7 conv stride 2, 3x3 max-pool stride 2).
        shortcut: ``"A"``, ``"B"``, ``"C"`` or ``"none"`` (plain network); see ``make_shortcut``.
        norm: ``"bn"`` or ``"none"``.
        survival_prob: p_L of stochastic depth (1.0 = off), decayed linearly over all blocks.
        drop_mode: ``"batch"`` (the paper's) or ``"sample"``.
        zero_init_residual: start every residual branch at zero.
    """

    def __init__(self, block: type[ResidualBlock], layers: Sequence[int], widths: Sequence[int], *,
                 num_classes: int = 10, stem: str = "cifar", shortcut: str = "A", norm: str = "bn",
                 survival_prob: float = 1.0, drop_mode: str = "batch", zero_init_residual: bool = False,
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError("layers and widths must have the same length")
        check_choice("stem", stem, STEMS)
        self.num_classes = num_classes
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(in_channels, stem_width)
            self.maxpool = nn.Identity()
        self.bn1 = norm2d(norm, stem_width)

        self.stage_names, in_planes = add_stages(self, block, layers, widths, stem_width,
                                                 survival_prob=survival_prob, shortcut=shortcut, norm=norm,
                                                 drop_mode=drop_mode)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes

        init_conv_bn(self)
        if zero_init_residual:
            for b in self.blocks():
                b.zero_init_last()

    def blocks(self) -> list[ResidualBlock]:
        """The residual (or plain) blocks in forward order."""
        return [b for name in self.stage_names for b in getattr(self, name)]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))  # (N, widths[0], H', W')
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)  # (N, num_features)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.fc(features)  # (N, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_WIDTHS = (64, 128, 256, 512)


def _shortcut_for(residual: bool, shortcut: str) -> str:
    """A network is residual or plain (``residual=False``, the ``plainN`` models); ``shortcut`` picks
    option A, B or C of a residual one. ``"none"`` is how a plain network reaches its blocks."""
    if shortcut == "none":
        raise ValueError("shortcut 'none' is a plain network: use the plain model (e.g. plain20), which differs "
                         "from its residual twin in the shortcut alone")
    return shortcut if residual else "none"


def cifar_resnet(depth: int, *, residual: bool = True, shortcut: str = "A", **options) -> ResNet:
    """He et al. section 4.2: 6n+2 layers, three stages of n basic blocks on 32/16/8 maps."""
    shortcut = _shortcut_for(residual, shortcut)
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n] * 3, CIFAR_WIDTHS, stem="cifar", shortcut=shortcut, **options)


IMAGENET_LAYOUTS: dict[int, tuple[type[ResidualBlock], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def imagenet_resnet(depth: int, *, residual: bool = True, shortcut: str = "B", small_input: bool = False,
                    **options) -> ResNet:
    """He et al. Table 1. ``small_input=True`` swaps the 7x7/2 stem and max-pool for a 3x3/1 conv (32x32 images)."""
    block, layers = IMAGENET_LAYOUTS[depth]
    options.setdefault("num_classes", 1000)
    return ResNet(block, layers, IMAGENET_WIDTHS, stem="cifar" if small_input else "imagenet",
                  shortcut=_shortcut_for(residual, shortcut), **options)
