"""A streaming loader over WebDataset shards, with the in-memory loader's interface.

Iteration yields ``(x, y)`` batches of this rank's share; ``len`` is the steps of an epoch; ``epoch``
and ``position`` count global batches; ``state_dict``/``load_state_dict`` hold three integers. Every
draw is a function of (seed, epoch, rank, worker) or of the image's key, so nothing random is stored.

How an epoch is laid out (a pure function of seed, epoch, ranks R and workers K):
- the shards are put in an order drawn from (seed, epoch) and dealt round-robin to the R x K
  (rank, worker) slots; a worker reads its shards in that order through a shuffle buffer seeded from
  (seed, epoch, rank, worker), and augments each image with draws seeded from (seed, epoch, image key);
- every rank takes the same number of steps, ``total // global batch`` (unequal counts would hang
  DistributedDataParallel at the end of an epoch), and each worker delivers a fixed quota of batches
  (the rank's steps split as evenly as possible over its workers; DataLoader takes them round-robin);
- so every image is seen once per epoch when the shards split evenly over the slots; otherwise a slot
  whose shards hold more images than its quota drops the rest, and one that holds fewer starts its
  shards again: with shards of n images, at most about n images per slot are dropped or repeated;
- resuming at global batch p: each worker replays its stream without decoding up to where it stood,
  and workers are renumbered so that DataLoader's round-robin continues with the right one; the run
  then sees exactly the batches an uninterrupted run would, at the same ranks x workers. At another
  layout it resumes at the same step with that layout's images for the rest of the epoch.
Evaluation (``train=False``) reads every image once: shards dealt to ranks and workers, no quota.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from reslab.data.arrays import mix_seed
from reslab.data.augment import normalize
from reslab.data.imagenet import eval_sample, ten_crop_sample, train_sample
from reslab.data.shards import read_index
from reslab.errors import DataError


def epoch_shards(shards: list[str], epoch: int, seed: int, shuffle: bool) -> list[str]:
    order = list(shards)
    if shuffle:
        random.Random(mix_seed(seed, epoch)).shuffle(order)
    return order


def slot_shards(order: list[str], slot: int, slots: int) -> list[str]:
    return order[slot::slots]


def quotas(steps: int, workers: int) -> list[int]:
    """Batches per worker: ``steps`` split as evenly as possible, the first workers taking the extra."""
    return [steps // workers + (1 if k < steps % workers else 0) for k in range(workers)]


def _samples(paths: list[str], where: str) -> Iterator[tuple[str, bytes, int, str]]:
    """(key, image bytes, label, shard) of each sample of the shards, in order; errors name the shard."""
    import webdataset as wds

    for path in paths:
        try:
            # reslab deals the shards to ranks and workers itself: webdataset must not split them again
            for sample in wds.WebDataset([path], shardshuffle=False, empty_check=False, nodesplitter=None,
                                         workersplitter=None):
                data = sample.get("jpg", sample.get("png"))
                if data is None or "cls" not in sample:
                    raise DataError(f"{path}: sample {sample.get('__key__')} has no image or no label")
                yield sample["__key__"], data, int(sample["cls"]), path
        except DataError:
            raise
        except Exception as e:  # a truncated or corrupt tar, as webdataset reports it
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise DataError(f"{path}: not a readable shard, or truncated ({first}) [{where}]") from None


def _one_line_errors(batches):
    """A DataError raised in a DataLoader worker arrives wrapped in the worker's traceback: keep its line."""
    try:
        yield from batches
    except DataError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        last = next((ln.split("DataError: ", 1)[1] for ln in reversed(lines) if "DataError: " in ln), lines[-1])
        raise DataError(last) from None


def _shuffled(stream: Iterator, size: int, rng: random.Random) -> Iterator:
    """A shuffle buffer of ``size`` items: each item leaves at a random place of the buffer."""
    buffer = []
    for item in stream:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class _Stream(IterableDataset):
    """What one DataLoader worker reads: the samples of its slot, decoded and augmented."""

    def __init__(self, loader: "ShardLoader", epoch: int, position: int) -> None:
        self.loader, self.epoch, self.position = loader, epoch, position

    def __iter__(self):
        info = get_worker_info()
        workers = max(1, self.loader.workers)
        physical = info.id if info is not None else 0
        logical = (physical + self.position) % workers  # so DataLoader's round-robin goes on where it stood
        yield from self.loader.worker_batches(self.epoch, logical, self.position)


class ShardLoader:
    """Batches from WebDataset shards; the interface of :class:`reslab.data.loader.BatchLoader`."""

    def __init__(self, root: str | Path, *, batch_size: int, train: bool, mean, std, recipe: str = "inception",
                 image_size: int = 224, seed: int = 0, rank: int = 0, world_size: int = 1, workers: int = 0,
                 shuffle_buffer: int = 1000, device: str | torch.device = "cpu", channels_last: bool = True,
                 ten_crop: bool = False) -> None:
        index = read_index(root)
        root = Path(root)
        self.shards = [str(root / s["name"]) for s in index["shards"]]
        self.total = int(index["total"])
        self.classes = list(index["classes"])
        if batch_size % world_size:
            raise DataError(f"data.batch_size = {batch_size} (the global batch) does not split evenly over "
                            f"{world_size} processes")
        self.batch_size, self.local_batch = batch_size, batch_size // world_size
        self.train, self.recipe, self.image_size = train, recipe, image_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.workers, self.shuffle_buffer = workers, shuffle_buffer
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.ten_crop = ten_crop and not train  # evaluation only: batches of (B, 10, 3, H, W)
        self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, device=self.device)
        self._std = torch.tensor(self.std, device=self.device)
        self.epoch, self.position = 0, 0
        if train and len(self) == 0:
            raise DataError(f"{root}: {self.total:,} images are fewer than one global batch of {batch_size}")

    @property
    def num_samples(self) -> int:
        return self.total

    def __len__(self) -> int:
        """Steps of an epoch: global batches (training, the last partial one dropped), or this rank's
        evaluation batches."""
        if self.train:
            return self.total // self.batch_size
        return -(-self.total // self.batch_size)  # an estimate for evaluation: progress only

    # -- one worker ------------------------------------------------------------------------------------
    def worker_stream(self, epoch: int, logical: int, position: int = 0) -> Iterator[tuple[str, bytes, int]]:
        """The (key, bytes, label) samples a training worker turns into batches from ``position`` on:
        its slot's shards in the epoch's order, through its shuffle buffer, started again if short,
        the samples of the batches it gave before ``position`` passed over (not decoded)."""
        workers = max(1, self.workers)
        slots = self.world_size * workers
        order = epoch_shards(self.shards, epoch, self.seed, self.train)
        mine = slot_shards(order, self.rank * workers + logical, slots)
        if not mine:  # more slots than shards: this slot reads the shards of its rank's first slot
            mine = slot_shards(order, self.rank * workers, slots) or order
        rng = random.Random(mix_seed(self.seed, epoch, self.rank, logical))
        stream = self._cycled(mine, f"rank {self.rank}, worker {logical}", rng)
        done = sum(1 for j in range(position) if j % workers == logical)  # batches this worker gave already
        for _ in range(done * self.local_batch):
            next(stream)
        return stream

    def worker_quota(self, logical: int, position: int = 0) -> int:
        """Batches a worker still gives in this epoch from ``position`` on."""
        workers = max(1, self.workers)
        done = sum(1 for j in range(position) if j % workers == logical)
        return quotas(len(self), workers)[logical] - done

    def worker_batches(self, epoch: int, logical: int, position: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        if not self.train:
            workers = max(1, self.workers)
            order = epoch_shards(self.shards, epoch, self.seed, False)
            yield from self._eval_batches(slot_shards(order, self.rank * workers + logical, self.world_size * workers),
                                          f"rank {self.rank}, worker {logical}")
            return
        stream = self.worker_stream(epoch, logical, position)
        for _ in range(self.worker_quota(logical, position)):
            images, labels, shifts = [], [], []
            for _ in range(self.local_batch):
                key, data, label, shard = next(stream)
                try:
                    pixels, shift = train_sample(data, self.recipe,
                                                 random.Random(mix_seed(self.seed, epoch, int(key))), self.image_size)
                except Exception as e:  # any Pillow failure: a sample that is not a readable image
                    raise DataError(f"{shard}: cannot decode sample {key} ({type(e).__name__}: {e})") from None
                images.append(torch.from_numpy(pixels))
                labels.append(label)
                shifts.append(torch.from_numpy(shift))
            yield torch.stack(images), torch.tensor(labels), torch.stack(shifts)

    def epoch_keys(self, epoch: int, position: int = 0) -> list[list[str]]:
        """The image keys of this rank's batches from ``position`` to the end of ``epoch``, in the order
        the loader delivers them (DataLoader takes the workers' batches round-robin): the plan, read
        without decoding anything."""
        workers = max(1, self.workers)
        per_worker = {}
        for k in range(workers):
            stream = self.worker_stream(epoch, k, position)
            per_worker[k] = [[next(stream)[0] for _ in range(self.local_batch)] for _ in range(self.worker_quota(k, position))]
        return [per_worker[j % workers].pop(0) for j in range(position, len(self))]

    def _cycled(self, shards: list[str], where: str, rng: random.Random) -> Iterator:
        while True:  # a slot short of its quota starts its shards again
            count = 0
            for item in _shuffled(_samples(shards, where), self.shuffle_buffer, rng):
                count += 1
                yield item
            if count == 0:
                raise DataError(f"the shards of {where} hold no samples: {', '.join(shards)}")

    def _eval_batches(self, shards: list[str], where: str):
        images, labels = [], []
        for key, data, label, shard in _samples(shards, where):
            try:
                crop = ten_crop_sample if self.ten_crop else eval_sample
                images.append(torch.from_numpy(crop(data, self.image_size)))
            except Exception as e:  # any Pillow failure: a sample that is not a readable image
                raise DataError(f"{shard}: cannot decode sample {key} ({type(e).__name__}: {e})") from None
            labels.append(label)
            if len(images) == self.local_batch:
                yield torch.stack(images), torch.tensor(labels), torch.zeros(len(labels), 3)
                images, labels = [], []
        if images:
            yield torch.stack(images), torch.tensor(labels), torch.zeros(len(labels), 3)

    # -- the loader --------------------------------------------------------------------------------------
    def _to_batch(self, images: Tensor, labels: Tensor, shifts: Tensor) -> tuple[Tensor, Tensor]:
        crops = images.shape[1] if images.dim() == 5 else 0  # 10-crop: uint8 (B, 10, H, W, 3)
        x = images.flatten(0, 1) if crops else images
        x = x.permute(0, 3, 1, 2).to(self.device, non_blocking=True)  # uint8 (B, 3, H, W)
        x = normalize(x, self._mean, self._std, channels_last=self.channels_last)
        if crops:
            x = x.unflatten(0, (-1, crops))
        if self.train and self.recipe == "he2016":  # PCA lighting: an RGB offset per image, before normalising
            x = x + (shifts.to(self.device, non_blocking=True) / self._std).view(-1, 3, 1, 1)
        return x, labels.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, position, steps = self.epoch, self.position, len(self)
        workers = self.workers
        data = DataLoader(_Stream(self, epoch, position), batch_size=None, num_workers=workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          multiprocessing_context="fork" if workers else None)
        index = position
        for images, labels, shifts in _one_line_errors(data):
            if self.train:
                index += 1
                self.epoch, self.position = (epoch + 1, 0) if index == steps else (epoch, index)
            yield self._to_batch(images, labels, shifts)
        if not self.train:
            self.epoch, self.position = epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position < max(len(self), 1):
            raise DataError(f"loader state (epoch {epoch}, batch {position}) does not fit an epoch of "
                            f"{len(self)} batches (did the shards or the batch size change?)")
        self.epoch, self.position, self.seed = epoch, position, int(state["seed"])


__all__ = ["ShardLoader", "quotas"]
