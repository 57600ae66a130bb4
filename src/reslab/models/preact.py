"""Pre-activation residual networks: BN and ReLU move before each convolution, the shortcut stays clean.

H(x) = F(x) + shortcut(x), with no ReLU after the addition, so the identity path runs from any block
to any later one untouched.

References:
    He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from reslab.models.layers import conv1x1, conv3x3, init_conv_bn, make_shortcut, norm2d
from reslab.models.resnet import CIFAR_WIDTHS, ResidualBlock, add_stages


class PreActBlock(ResidualBlock):
    """Shared forward of the pre-activation blocks; ``branch`` is F after the first BN-ReLU."""

    post_activation = False

    def __init__(self, in_planes: int, out_planes: int, stride: int, *, shortcut: str, survival_prob: float,
                 drop_mode: str) -> None:
        # The projection acts on the pre-activated input and needs no BN of its own.
        super().__init__(downsample=make_shortcut(shortcut, in_planes, out_planes, stride, "none"),
                         has_shortcut=shortcut != "none", survival_prob=survival_prob,
                         drop_mode=drop_mode, changes_shape=stride != 1 or in_planes != out_planes)

    def branch(self, pre: Tensor) -> Tensor:
        raise NotImplementedError

    def residual(self, x: Tensor) -> Tensor:
        return self.branch(torch.relu(self.bn1(x)))

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(torch.relu(self.bn1(x)))

    def forward(self, x: Tensor) -> Tensor:
        pre = torch.relu(self.bn1(x))  # shared by the branch and a projection shortcut
        if not self.has_shortcut:
            return self.branch(pre)
        identity = x if self.downsample is None else self.downsample(pre)
        if self.drop.drop_block():
            return identity
        return self.drop(self.branch(pre)) + identity

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.last_conv.weight)


class PreActBasicBlock(PreActBlock):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B", norm: str = "bn",
                 survival_prob: float = 1.0, drop_mode: str = "batch") -> None:
        super().__init__(in_planes, planes, stride, shortcut=shortcut, survival_prob=survival_prob,
                         drop_mode=drop_mode)
        self.bn1 = norm2d(norm, in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = norm2d(norm, planes)
        self.conv2 = conv3x3(planes, planes)
        self.last_conv = self.conv2

    def branch(self, pre: Tensor) -> Tensor:
        out = self.conv1(pre)  # (N, planes, H/stride, W/stride)
        return self.conv2(torch.relu(self.bn2(out)))


class PreActBottleneck(PreActBlock):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B", norm: str = "bn",
                 survival_prob: float = 1.0, drop_mode: str = "batch") -> None:
        out_planes = planes * self.expansion
        super().__init__(in_planes, out_planes, stride, shortcut=shortcut, survival_prob=survival_prob,
                         drop_mode=drop_mode)
        self.bn1 = norm2d(norm, in_planes)
        self.conv1 = conv1x1(in_planes, planes)
        self.bn2 = norm2d(norm, planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm2d(norm, planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.last_conv = self.conv3

    def branch(self, pre: Tensor) -> Tensor:
        out = self.conv1(pre)  # (N, planes, H, W)
        out = self.conv2(torch.relu(self.bn2(out)))  # (N, planes, H/stride, W/stride)
        return self.conv3(torch.relu(self.bn3(out)))  # (N, 4 planes, H/stride, W/stride)


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet: 3x3 conv, three stages, BN-ReLU, global pooling, fully connected."""

    def __init__(self, block: type[PreActBlock], layers: Sequence[int], widths: Sequence[int] = CIFAR_WIDTHS, *,
                 num_classes: int = 10, shortcut: str = "B", norm: str = "bn", survival_prob: float = 1.0,
                 drop_mode: str = "batch", zero_init_residual: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = conv3x3(in_channels, widths[0])
        self.stage_names, in_planes = add_stages(self, block, layers, widths, widths[0],
                                                 survival_prob=survival_prob, shortcut=shortcut, norm=norm,
                                                 drop_mode=drop_mode)
        self.bn_final = norm2d(norm, in_planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes
        init_conv_bn(self)
        if zero_init_residual:
            for b in self.blocks():
                b.zero_init_last()

    def blocks(self) -> list[PreActBlock]:
        return [b for name in self.stage_names for b in getattr(self, name)]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.conv1(x)  # (N, 16, 32, 32)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = torch.relu(self.bn_final(x))
        return torch.flatten(self.avgpool(x), 1)  # (N, num_features)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def preact_resnet(depth: int, *, bottleneck: bool, **options) -> PreActResNet:
    """Depth 6n+2 with basic blocks, 9n+2 with bottlenecks."""
    per_block = 9 if bottleneck else 6
    if (depth - 2) % per_block:
        raise ValueError(f"pre-activation ResNet depth must be {per_block}n+2, got {depth}")
    n = (depth - 2) // per_block
    return PreActResNet(PreActBottleneck if bottleneck else PreActBasicBlock, [n] * 3, **options)
