"""Densely connected networks: layer l of a dense block sees k0 + k(l-1) feature maps.

Each layer adds ``growth_rate`` (k) maps to everything before it. DenseNet-BC puts a 1x1 bottleneck of
``bn_size * k`` maps before each 3x3 convolution and compresses channels by ``compression`` at each
transition.

References:
    Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from reslab.models.layers import check_choice, conv1x1, conv3x3, init_conv_bn, norm2d


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1(bn_size k)-BN-ReLU-conv3x3(k); returns only the k new maps."""

    def __init__(self, in_planes: int, growth_rate: int, *, bn_size: int = 4, norm: str = "bn") -> None:
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = norm2d(norm, in_planes)
        self.conv1 = conv1x1(in_planes, inner)
        self.norm2 = norm2d(norm, inner)
        self.conv2 = conv3x3(inner, growth_rate)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(torch.relu(self.norm1(x)))  # (N, bn_size k, H, W)
        return self.conv2(torch.relu(self.norm2(out)))  # (N, k, H, W)


class DenseBlock(nn.Module):
    def __init__(self, num_layers: int, in_planes: int, growth_rate: int, **layer_options) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_planes + i * growth_rate, growth_rate, **layer_options) for i in range(num_layers))
        self.out_planes = in_planes + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)  # (N, C + k, H, W)
        return x


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) and 2x2 average pooling."""

    def __init__(self, in_planes: int, out_planes: int, *, norm: str = "bn") -> None:
        super().__init__()
        self.norm = norm2d(norm, in_planes)
        self.relu = nn.ReLU()
        self.conv = conv1x1(in_planes, out_planes)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """Stem, dense blocks joined by transitions, BN-ReLU, global pooling, fully connected.

    Args:
        block_config: layers per dense block.
        growth_rate: k, the maps each layer adds.
        num_init_features: maps out of the stem (2k for DenseNet-BC on CIFAR, 64 on ImageNet).
        bn_size: bottleneck width as a multiple of k.
        compression: fraction of maps kept by a transition (theta).
        stem: ``"cifar"`` (one 3x3 conv) or ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool).
    """

    def __init__(self, block_config: Sequence[int], growth_rate: int, num_init_features: int, *,
                 num_classes: int = 10, bn_size: int = 4, compression: float = 0.5, stem: str = "cifar",
                 norm: str = "bn", in_channels: int = 3) -> None:
        super().__init__()
        check_choice("stem", stem, ("cifar", "imagenet"))
        self.num_classes = num_classes
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False),
                norm2d(norm, num_init_features), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(conv3x3(in_channels, num_init_features))
        stages: list[nn.Module] = []
        planes = num_init_features
        for i, n in enumerate(block_config):
            block = DenseBlock(n, planes, growth_rate, bn_size=bn_size, norm=norm)
            stages.append(block)
            planes = block.out_planes
            if i < len(block_config) - 1:
                out = int(math.floor(planes * compression))
                stages.append(Transition(planes, out, norm=norm))
                planes = out
        self.stages = nn.Sequential(*stages)
        self.norm_final = norm2d(norm, planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        self.num_features = planes
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def blocks(self) -> list[DenseLayer]:
        """The dense layers in forward order."""
        return [m for m in self.modules() if isinstance(m, DenseLayer)]

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        x = torch.relu(self.norm_final(x))
        return torch.flatten(self.avgpool(x), 1)  # (N, num_features)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def densenet_bc_cifar(depth: int, growth_rate: int, **options) -> DenseNet:
    """DenseNet-BC for CIFAR: three blocks of (depth - 4) / 6 bottleneck layers, stem of 2k maps."""
    if (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    return DenseNet([n] * 3, growth_rate, 2 * growth_rate, stem="cifar", **options)


def densenet_imagenet(block_config: Sequence[int], growth_rate: int = 32, *, small_input: bool = False,
                      **options) -> DenseNet:
    options.setdefault("num_classes", 1000)
    return DenseNet(block_config, growth_rate, 64, stem="cifar" if small_input else "imagenet", **options)
