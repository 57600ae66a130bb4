"""Batch augmentation and normalisation as tensor operations on whole uint8 batches, on any device.

He et al. (2016, section 4.2): "4 pixels are padded on each side, and a 32x32 crop is randomly
sampled from the padded image or its horizontal flip", and "we use the per-pixel mean subtracted"
(here, as is common since, the per-channel mean and standard deviation).

References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def random_crop_flip(x: Tensor, *, padding: int = 4, generator: torch.Generator | None = None,
                     part_of: tuple[int, int] | None = None) -> Tensor:
    """Zero-pad each image by ``padding``, crop back to (H, W) at a random offset, flip half of them.

    Offsets are uniform in ``0..2*padding`` per image and axis; each image is mirrored left-right
    with probability 0.5. The draws come from ``generator`` (a CPU generator) and move to
    ``x.device``; the crop and flip are one gather, with no loop over images. uint8 in, uint8 out.

    ``part_of=(start, total)``: ``x`` is images ``start..start+len(x)`` of a batch of ``total``; the
    draws are made for the whole batch and this part takes its own, so every process of a run
    augments its share of a global batch exactly as one process would the whole of it.
    """
    b, c, h, w = x.shape
    start, total = part_of or (0, b)
    offset_y = torch.randint(0, 2 * padding + 1, (total,), generator=generator)
    offset_x = torch.randint(0, 2 * padding + 1, (total,), generator=generator)
    flip = (torch.rand(total, generator=generator) < 0.5).long()
    draws = torch.stack([offset_y, offset_x, flip])[:, start:start + b]
    offset_y, offset_x, flip = draws.to(x.device)  # one host-to-device copy

    padded = x.new_zeros((b, c, h + 2 * padding, w + 2 * padding))
    padded[:, :, padding:padding + h, padding:padding + w] = x  # (B, C, H + 2p, W + 2p)
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    rows = offset_y[:, None] + ys  # (B, H) source row of each output row
    cols = offset_x[:, None] + torch.where(flip[:, None].bool(), w - 1 - xs, xs)  # (B, W) source column, mirrored
    index = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # (B, H, W) positions in a padded plane
    out = padded.flatten(2).gather(2, index.flatten(1)[:, None, :].expand(b, c, h * w))  # (B, C, H*W)
    return out.view(b, c, h, w)


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, *,
              dtype: torch.dtype = torch.float32, channels_last: bool = True) -> Tensor:
    """``(x / 255 - mean) / std`` per channel, from uint8 to ``dtype`` (computed in float32). ``mean`` may
    also be an image, (C, H, W): He et al.'s per-pixel mean, subtracted pixel by pixel.

    With ``channels_last`` the result is in the channels-last memory format (the fast layout for
    convolutions on CPU); its shape stays (B, C, H, W).
    """
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # cheap on uint8; float ops keep the format
    shape = (1, -1) + (1,) * (x.dim() - 2)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(shape)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
    mean_t = mean_t.view(shape) if mean_t.dim() <= 1 else mean_t.unsqueeze(0)  # (1, C, 1, 1) or (1, C, H, W)
    # one fused pass, uint8 in, float32 out (in x's memory format): x * (1 / (255 std)) - mean / std
    out = torch.addcmul(-mean_t / std_t, x, 1.0 / (255.0 * std_t), out=torch.empty_like(x, dtype=torch.float32))
    return out if dtype == torch.float32 else out.to(dtype)


def per_channel_stats(images: Tensor, *, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and standard deviation of each channel of uint8 (N, C, H, W) images, on the 0-1 scale.

    Exact: counts the 256 values of each channel (no float accumulation over millions of pixels).
    """
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        block = images[start:start + chunk]
        for c in range(channels):
            counts[c] += torch.bincount(block[:, c].reshape(-1), minlength=256).to("cpu", torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum(dim=1)
    mean = (counts * values).sum(dim=1) / total
    var = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / total
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def per_pixel_mean(images: Tensor, *, chunk: int = 4096) -> list:
    """The mean image of uint8 (N, C, H, W) images on the 0-1 scale, as nested lists (C, H, W): He et al.'s
    "per-pixel mean", summed exactly in float64."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        total += images[start:start + chunk].to(torch.float64).sum(0)
    return (total / (255.0 * max(1, images.shape[0]))).tolist()
