"""Building blocks shared by the networks: convolutions, normalisation, shortcuts, stochastic depth.

References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (shortcut options A/B/C).
    Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORMS = ("bn", "none")
SHORTCUTS = ("A", "B", "C", "none")
DROP_MODES = ("batch", "sample")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def norm2d(norm: str, channels: int, *, eps: float = 1e-5) -> nn.Module:
    """BatchNorm2d for ``norm="bn"``; the identity for ``norm="none"`` (to show what BN buys)."""
    check_choice("norm", norm, NORMS)
    return nn.BatchNorm2d(channels, eps=eps) if norm == "bn" else nn.Identity()


class PadShortcut(nn.Module):
    """Option A: a parameter-free shortcut for increased dimensions.

    Subsamples the input by ``stride`` and appends zero channels: the identity on the first
    ``in_planes`` channels, zero on the new ones.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError("option A can only increase the number of channels")
        self.stride = stride
        self.extra = out_planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (N, C, H/s, W/s)
        if self.extra:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra))  # (N, C + extra, H/s, W/s)
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


def projection(in_planes: int, out_planes: int, stride: int, norm: str) -> nn.Sequential:
    """Options B and C: a strided 1x1 convolution and BatchNorm (torchvision's ``downsample``)."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), norm2d(norm, out_planes))


def make_shortcut(shortcut: str, in_planes: int, out_planes: int, stride: int, norm: str) -> nn.Module | None:
    """The shortcut module of a block, or ``None`` when it is the plain identity.

    ``"A"``: identity, zero-padded where dimensions increase (no parameters).
    ``"B"``: identity, projection where dimensions change.
    ``"C"``: projection on every shortcut.
    ``"none"``: no shortcut at all (a plain network); the caller must not add one.
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    changes = stride != 1 or in_planes != out_planes
    if shortcut == "C" or (shortcut == "B" and changes):
        return projection(in_planes, out_planes, stride, norm)
    if shortcut == "A" and changes:
        return PadShortcut(in_planes, out_planes, stride)
    return None


def survival_probs(num_blocks: int, survival_prob: float) -> list[float]:
    """The linear decay rule of stochastic depth: block l of L survives with p_l = 1 - (l/L)(1 - p_L).

    ``survival_prob`` is p_L, the last block's survival probability; 1.0 turns stochastic depth off.
    """
    if not 0.0 < survival_prob <= 1.0:
        raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob}")
    return [1.0 - (l / num_blocks) * (1.0 - survival_prob) for l in range(1, num_blocks + 1)]


class StochasticDepth(nn.Module):
    """Gate on a residual branch: keep it with probability ``p`` in training, scale by ``p`` at test.

    ``mode="batch"`` (Huang et al.'s way): one Bernoulli draw per mini-batch decides whether the whole
    block is skipped; the block asks :meth:`drop_block` before computing its branch, so a dropped block
    costs nothing. ``mode="sample"``: an independent draw per sample, applied as a mask on the branch.
    In both modes a surviving branch is not rescaled in training; at test time the branch is
    multiplied by ``p`` (its expected contribution), as in the paper.
    """

    def __init__(self, p: float = 1.0, mode: str = "batch") -> None:
        super().__init__()
        if not 0.0 < p <= 1.0:
            raise ValueError(f"survival probability must be in (0, 1], got {p}")
        self.p = float(p)
        self.mode = check_choice("drop_mode", mode, DROP_MODES)

    @property
    def active(self) -> bool:
        return self.p < 1.0

    def drop_block(self) -> bool:
        """True when the whole block is to be skipped for this mini-batch (training, batch mode)."""
        if not (self.training and self.active and self.mode == "batch"):
            return False
        return bool(torch.rand(()) >= self.p)

    def forward(self, branch: Tensor) -> Tensor:
        if not self.active:
            return branch
        if not self.training:
            return branch * self.p
        if self.mode == "sample":
            keep = torch.rand(branch.shape[0], 1, 1, 1, device=branch.device) < self.p
            return branch * keep.to(branch.dtype)
        return branch

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}, mode={self.mode}"


def init_conv_bn(module: nn.Module) -> None:
    """He initialisation for convolutions (fan_out, as torchvision), unit scale and zero shift for BN."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
