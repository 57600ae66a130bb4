"""An in-memory image dataset (one uint8 tensor) and stratified splits of it.

He et al. (2016, section 4.2) hold out 5,000 of the 50,000 CIFAR-10 training images for validation;
:func:`stratified_split` takes the same share of every class, so 45,000 / 5,000 is exactly 500
validation images per class.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from a tuple of integers, the same on every platform and Python version.

    ``mix_seed(seed, epoch)`` and ``mix_seed(seed, epoch, batch)`` give unrelated generators, so
    every random draw of a run is a pure function of its coordinates.
    """
    data = b"".join(int(p).to_bytes(16, "little", signed=True) for p in parts)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


@dataclass
class ArrayDataset:
    """Images and labels held whole: ``images`` uint8 (N, 3, H, W) contiguous, ``labels`` int64 (N,)."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be int64 ({self.images.shape[0]},), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")
        self.images = self.images.contiguous()

    def __len__(self) -> int:
        return self.labels.numel()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def resized(self, size: int, *, chunk: int = 4096) -> ArrayDataset:
        """Every image resized to ``size`` x ``size``, rounded back to uint8: shrunk by area averaging (32 to
        16: the mean of each 2x2 block), enlarged bilinearly; the same dataset where it has that size."""
        if tuple(self.images.shape[-2:]) == (size, size):
            return self
        out = torch.empty((len(self), self.images.shape[1], size, size), dtype=torch.uint8)
        for i in range(0, len(self), chunk):
            x = self.images[i:i + chunk].float()
            y = (torch.nn.functional.interpolate(x, size=(size, size), mode="area") if size < x.shape[-1] else
                 torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))
            out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
        return ArrayDataset(out, self.labels.clone(), list(self.classes))

    def jpeg(self, quality: int) -> ArrayDataset:
        """Every image encoded as a JPEG at ``quality`` and decoded again (Pillow, 4:2:0 chroma, no
        optimisation passes): the same bytes in, the same pixels out, on every run."""
        import io

        from PIL import Image

        out = torch.empty_like(self.images)
        for i, image in enumerate(self.images):
            buffer = io.BytesIO()
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality,
                                                                 subsampling=2, optimize=False)
            buffer.seek(0)
            with Image.open(buffer) as im:
                out[i] = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)  # a writable copy
        return ArrayDataset(out, self.labels.clone(), list(self.classes))

    def subset(self, indices: Tensor | Sequence[int]) -> ArrayDataset:
        """The images at ``indices``, in that order (a copy)."""
        idx = torch.as_tensor(indices, dtype=torch.int64, device=self.images.device)
        return ArrayDataset(self.images.index_select(0, idx), self.labels.index_select(0, idx), list(self.classes))


def _class_quotas(counts: Tensor, total: int) -> Tensor:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, ties to the lower class)."""
    n = int(counts.sum())
    exact = counts.to(torch.float64) * total / n
    quotas = exact.floor().to(torch.int64)
    remainder = exact - quotas
    short = total - int(quotas.sum())
    # Stable sort on the negated remainder: equal remainders keep class order.
    order = torch.sort(-remainder, stable=True).indices
    quotas[order[:short]] += 1
    return quotas


def stratified_split(labels: Tensor, val_size: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Hold out ``val_size`` indices, the same share of every class: ``(train_idx, val_idx)``, both sorted.

    The draw is a pure function of ``(labels, val_size, seed)``.
    """
    labels = labels.cpu()
    n = labels.numel()
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must lie in 0..{n}, got {val_size}")
    classes, counts = torch.unique(labels, sorted=True, return_counts=True)
    quotas = _class_quotas(counts, val_size) if n else counts
    generator = torch.Generator().manual_seed(mix_seed(seed, n, val_size))
    in_val = torch.zeros(n, dtype=torch.bool)
    for c, quota in zip(classes.tolist(), quotas.tolist()):
        members = torch.nonzero(labels == c).flatten()  # sorted
        pick = torch.randperm(members.numel(), generator=generator)[:quota]
        in_val[members[pick]] = True
    return torch.nonzero(~in_val).flatten(), torch.nonzero(in_val).flatten()


def stratified_subset(labels: Tensor, n: int, *, seed: int) -> Tensor:
    """``n`` sorted indices with every class in proportion (for ``data.limit``)."""
    return stratified_split(labels, n, seed=seed)[1]
