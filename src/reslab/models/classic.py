"""The lecture's earlier "popular networks", kept as baselines: LeNet-5, AlexNet, VGG.

Layouts and parameter counts follow torchvision for AlexNet and VGG; ``small_input=True`` adapts the
first layers and the classifier to 32x32 images.

References:
    LeCun, Bottou, Bengio, Haffner. Gradient-Based Learning Applied to Document Recognition. 1998.
    Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep Convolutional Neural Networks. 2012.
    Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from reslab.models.layers import check_choice, norm2d

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class Classic(nn.Module):
    """A feature extractor, a pooling, a classifier: the shape all three baselines share."""

    def __init__(self, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = features
        self.avgpool = pool
        self.classifier = classifier

    def blocks(self) -> list[nn.Module]:
        """The convolutions in forward order (these networks have no residual blocks)."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.classifier(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def lenet5(*, num_classes: int = 10, activation: str = "tanh", in_channels: int = 3) -> Classic:
    """C1 conv 6@5x5, S2 pool, C3 conv 16@5x5, S4 pool, C5 conv 120@5x5, F6 84, output; 32x32 inputs."""
    act = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), act(), nn.AvgPool2d(2),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),  # (N, 16, 5, 5)
        nn.Conv2d(16, 120, 5), act())  # (N, 120, 1, 1)
    classifier = nn.Sequential(nn.Linear(120, 84), act(), nn.Linear(84, num_classes))
    return Classic(features, nn.Identity(), classifier, num_classes)


def alexnet(*, num_classes: int = 1000, small_input: bool = False, dropout: float = 0.5,
            in_channels: int = 3) -> Classic:
    """torchvision's single-tower AlexNet; on 32x32 inputs 3x3 stride-1 first conv, 2x2 pools, 1024-wide FC."""
    if small_input:
        conv1, pool, grid, hidden = nn.Conv2d(in_channels, 64, 3, padding=1), nn.MaxPool2d(2), 4, 1024
    else:
        conv1, pool, grid, hidden = nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.MaxPool2d(3, 2), 6, 4096
    features = nn.Sequential(
        conv1, nn.ReLU(), pool,
        nn.Conv2d(64, 192, 5 if not small_input else 3, padding=2 if not small_input else 1), nn.ReLU(),
        nn.MaxPool2d(3, 2) if not small_input else nn.MaxPool2d(2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2) if not small_input else nn.MaxPool2d(2))
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(256 * grid * grid, hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes))
    return Classic(features, nn.AdaptiveAvgPool2d(grid), classifier, num_classes)


VGG_LAYOUTS: dict[int, Sequence[int | str]] = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg(depth: int, *, num_classes: int = 1000, norm: str = "none", small_input: bool = False,
        dropout: float = 0.5, in_channels: int = 3) -> Classic:
    """VGG-16/19 (configurations D and E); ``norm="bn"`` puts BatchNorm after every convolution."""
    check_choice("norm", norm, ("bn", "none"))
    layers: list[nn.Module] = []
    planes = in_channels
    for v in VGG_LAYOUTS[depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers += [nn.Conv2d(planes, int(v), 3, padding=1)]
        if norm == "bn":
            layers.append(norm2d(norm, int(v)))
        layers.append(nn.ReLU())
        planes = int(v)
    grid, hidden = (1, 512) if small_input else (7, 4096)
    classifier = nn.Sequential(
        nn.Linear(512 * grid * grid, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes))
    model = Classic(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(grid), classifier, num_classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model
