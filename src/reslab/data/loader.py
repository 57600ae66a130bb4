"""A device-resident batch loader: the whole uint8 dataset is one tensor, batches are index gathers.

Every random draw is a pure function of the loader's coordinates: the order of epoch ``e`` comes
from a generator seeded with ``mix_seed(seed, e)``, the augmentation of batch ``b`` of epoch ``e``
from ``mix_seed(seed, e, b)``. So ``state_dict()`` is three integers, and a run resumed from it
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from reslab.data.arrays import ArrayDataset, mix_seed
from reslab.data.augment import normalize, per_channel_stats, random_crop_flip
from reslab.errors import DataError

__all__ = ["BatchLoader", "per_channel_stats"]  # per_channel_stats: the statistics a loader normalises with


class BatchLoader:
    """Yields ``(x, y)``: x float32 (B, 3, H, W) normalised (channels-last memory), y int64 (B,).

    Iterating runs from the current ``position`` (batch index within the epoch) to the end of the
    epoch. ``epoch`` and ``position`` advance as each batch is handed out, before the consumer
    sees it, so a checkpoint taken while holding batch ``b`` resumes at batch ``b + 1``; after the
    last batch of an epoch they read ``(epoch + 1, 0)``.

    Under several processes, ``batch_size`` is the *global* batch: every rank computes the same
    global batch (order and augmentation from (seed, epoch, batch)) and keeps its slice of
    ``batch_size / world_size`` images, so a run sees the same images at any world size, and
    ``epoch``/``position`` count global batches (a checkpoint resumes at another world size).
    """

    def __init__(self, dataset: ArrayDataset, *, batch_size: int, shuffle: bool = False, augment: bool = False,
                 mean: Sequence[float], std: Sequence[float], seed: int = 0, drop_last: bool = False,
                 device: str | torch.device = "cpu", channels_last: bool = True, padding: int = 4,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if batch_size % world_size:
            raise DataError(f"data.batch_size = {batch_size} (the global batch) does not split evenly over "
                            f"{world_size} processes")
        self.rank, self.world_size = rank, world_size
        self.images = dataset.images.to(device).contiguous()  # uint8 (N, 3, H, W), resident on the device
        self.labels = dataset.labels.to(device)
        self.classes = list(dataset.classes)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed, self.drop_last, self.channels_last, self.padding = seed, drop_last, channels_last, padding
        self.device = self.images.device
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)  # made once, not per batch
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        self.epoch = 0
        self.position = 0

    @property
    def num_samples(self) -> int:
        return self.labels.numel()

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """The sample indices of ``epoch`` in the order they are served (on the loader's device)."""
        if not self.shuffle:
            return torch.arange(self.num_samples, device=self.device)
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(self.num_samples, generator=generator).to(self.device)

    def batch(self, epoch: int, index: int, order: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """This rank's part of batch ``index`` of ``epoch``, computed from scratch (does not move the loader)."""
        order = self.order(epoch) if order is None else order
        idx = order[index * self.batch_size:(index + 1) * self.batch_size]  # the global batch
        total, share = len(idx), len(idx) // self.world_size
        if self.world_size > 1:
            idx = idx[self.rank * share:(self.rank + 1) * share]
        x = self.images.index_select(0, idx)  # uint8 (B, 3, H, W)
        if self.augment:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch, index))
            x = random_crop_flip(x, padding=self.padding, generator=generator, part_of=(self.rank * share, total))
        return normalize(x, self._mean, self._std, channels_last=self.channels_last), self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, batches = self.epoch, len(self)
        order = self.order(epoch)
        for index in range(self.position, batches):
            x, y = self.batch(epoch, index, order)
            if index + 1 == batches:
                self.epoch, self.position = epoch + 1, 0
            else:
                self.position = index + 1
            yield x, y

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, position, seed = int(state["epoch"]), int(state["position"]), int(state["seed"])
        if epoch < 0 or not 0 <= position < max(len(self), 1):
            raise DataError(f"loader state (epoch {epoch}, batch {position}) does not fit an epoch of "
                            f"{len(self)} batches (did the dataset or batch size change?)")
        self.epoch, self.position, self.seed = epoch, position, seed
