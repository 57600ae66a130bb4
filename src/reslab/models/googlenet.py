"""GoogLeNet (Inception v1) with its two auxiliary classifiers.

In training the model returns :class:`AuxOutputs`; the loss adds ``aux_weight`` (0.3 in the paper)
times the cross-entropy of each auxiliary head. In evaluation it returns the main logits only.

Layout and parameter count follow torchvision (BatchNorm after every convolution), including its
3x3 kernel in the branch the paper specifies as 5x5; ``paper_5x5=True`` restores the paper's kernel.
``transform_input=True`` is torchvision's convention for its published weights (ported from TensorFlow):
the network takes ImageNet-normalised input and first rescales each channel to ``(x - 0.5) / 0.5``.

References:
    Szegedy et al. Going Deeper with Convolutions. CVPR 2015.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from reslab.models.layers import init_conv_bn, norm2d


class AuxOutputs(NamedTuple):
    """Training output of a model with auxiliary classifiers (read by the trainer's loss)."""

    logits: Tensor
    aux_logits: tuple[Tensor, ...]
    aux_weight: float


class ConvBN(nn.Sequential):
    """Convolution (no bias), BatchNorm (eps 1e-3), ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 norm: str = "bn") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = norm2d(norm, out_planes, eps=1e-3)
        self.relu = nn.ReLU()


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-5x5; 3x3 max-pool-1x1), concatenated along channels."""

    def __init__(self, in_planes: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, *, paper_5x5: bool = False, norm: str = "bn") -> None:
        super().__init__()
        k5 = 5 if paper_5x5 else 3
        self.branch1 = ConvBN(in_planes, ch1x1, 1, norm=norm)
        self.branch2 = nn.Sequential(ConvBN(in_planes, ch3x3red, 1, norm=norm),
                                     ConvBN(ch3x3red, ch3x3, 3, padding=1, norm=norm))
        self.branch3 = nn.Sequential(ConvBN(in_planes, ch5x5red, 1, norm=norm),
                                     ConvBN(ch5x5red, ch5x5, k5, padding=k5 // 2, norm=norm))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     ConvBN(in_planes, pool_proj, 1, norm=norm))
        self.out_planes = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (N, out_planes, H, W)


class AuxClassifier(nn.Module):
    """4x4 average pool, 1x1 conv to 128, FC 1024, dropout 0.7, FC to the classes."""

    def __init__(self, in_planes: int, num_classes: int, *, norm: str = "bn") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvBN(in_planes, 128, 1, norm=norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)  # (N, 2048)
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): Szegedy et al. Table 1.
INCEPTION_CONFIG: dict[str, Sequence[int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


# ImageNet's per-channel statistics (0-1 scale), which transform_input assumes the input was normalised with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def transform_input(x: Tensor) -> Tensor:
    """ImageNet-normalised ``(x01 - mean) / std`` to ``(x01 - 0.5) / 0.5``: ``x * std / 0.5 + (mean - 0.5) / 0.5``."""
    scale = x.new_tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift  # (N, 3, H, W)


class GoogLeNet(nn.Module):
    def __init__(self, *, num_classes: int = 1000, aux_logits: bool = True, aux_weight: float = 0.3,
                 small_input: bool = False, paper_5x5: bool = False, norm: str = "bn", dropout: float = 0.2,
                 in_channels: int = 3, transform_input: bool = False) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError("transform_input rescales the 3 channels of ImageNet-normalised images")
        self.num_classes = num_classes
        self.aux_weight = aux_weight
        self.transform_input = transform_input  # a convention, not a weight: never in the state dict
        if small_input:  # 32x32 images: no early down-sampling before the 16x16 inception stage
            self.conv1 = ConvBN(in_channels, 64, 3, padding=1, norm=norm)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = ConvBN(in_channels, 64, 7, stride=2, padding=3, norm=norm)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = ConvBN(64, 64, 1, norm=norm)
        self.conv3 = ConvBN(64, 192, 3, padding=1, norm=norm)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, cfg in INCEPTION_CONFIG.items():
            self.add_module(name, Inception(*cfg, paper_5x5=paper_5x5, norm=norm))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1 = AuxClassifier(512, num_classes, norm=norm) if aux_logits else None
        self.aux2 = AuxClassifier(528, num_classes, norm=norm) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.num_features = 1024
        init_conv_bn(self)

    def blocks(self) -> list[Inception]:
        return [getattr(self, name) for name in INCEPTION_CONFIG]

    def _trunk(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.transform_input:
            x = transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (N, 192, H/8, W/8) on 224 inputs
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (N, 480, H/16, W/16)
        x = self.inception4a(x)  # (N, 512, ...)
        aux = []
        if self.aux1 is not None and self.training:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, ...)
        if self.aux2 is not None and self.training:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))  # (N, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, ...)
        return torch.flatten(self.avgpool(x), 1), aux

    def forward_features(self, x: Tensor) -> Tensor:
        return self._trunk(x)[0]

    def forward_head(self, features: Tensor) -> Tensor:
        return self.fc(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor | AuxOutputs:
        features, aux = self._trunk(x)
        logits = self.forward_head(features)
        if aux:
            return AuxOutputs(logits, tuple(aux), self.aux_weight)
        return logits
