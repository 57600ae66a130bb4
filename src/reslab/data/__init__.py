"""Datasets, augmentation and the batch loader; :func:`build_data` turns a ``DataConfig`` into loaders.

Readers return an :class:`ArrayDataset`, the whole dataset as one uint8 tensor: CIFAR-10/100 in the
official python format (:func:`load_cifar`), class-per-folder image trees or archives of them
(:func:`load_image_folder`, decoded once and cached) and the embedded sample (:func:`load_sample`).
:class:`BatchLoader` keeps it on the device and crops and flips whole batches with tensor ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from reslab.data.arrays import ArrayDataset, mix_seed, stratified_split, stratified_subset
from reslab.data.augment import normalize, per_channel_stats, per_pixel_mean, random_crop_flip
from reslab.data.cifar import CIFAR, download_cifar, load_cifar
from reslab.data.folder import load_image_folder
from reslab.data.loader import BatchLoader
from reslab.data.sample import SAMPLE_ARCHIVE, load_sample
from reslab.errors import DataError

if TYPE_CHECKING:
    from reslab.config import DataConfig

__all__ = [
    "ArrayDataset", "BatchLoader", "DataBundle", "SAMPLE_ARCHIVE", "build_data", "build_eval_data", "download_cifar",
    "load_cifar", "resolve_val_size",
    "load_image_folder", "load_sample", "normalize", "per_channel_stats", "random_crop_flip", "stratified_split",
    "stratified_subset",
]

DATASETS = ("sample", "cifar10", "cifar100", "folder", "shards")


@dataclass
class DataBundle:
    """What a run needs from its data: the loaders and the facts a model and a report need."""

    train: BatchLoader
    val: BatchLoader | None
    num_classes: int
    classes: list[str]
    image_size: int  # image height (= width for every dataset here)
    mean: tuple[float, ...]  # per channel, 0-1 scale, of the training part
    std: tuple[float, ...]
    description: str

    @property
    def stats(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}``: plain data for a checkpoint, accepted back by ``build_data(stats=)``."""
        return {"mean": list(self.mean), "std": list(self.std)}


Stats = Mapping[str, Sequence[float]] | tuple[Sequence[float], Sequence[float]]


def build_data(cfg: DataConfig, *, seed: int, device: str | torch.device = "cpu", channels_last: bool = True,
               stats: Stats | None = None, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Read ``cfg.dataset``, split off validation, limit, normalise, and wrap both parts in loaders.

    Validation is the official test set with ``test_split``, else a stratified hold-out of
    ``val_size`` training images drawn with ``split_seed`` (the same for every run seed). ``limit``
    keeps a stratified subset of the training part. Mean and std come from the training part only,
    unless ``stats`` gives them (``{"mean", "std"}`` or a pair; e.g. a checkpoint's, to evaluate it).
    The training loader shuffles and augments (``cfg.augment``) with ``seed`` and drops the last
    partial batch; the validation loader serves every image once, in order, unaugmented. With
    ``world_size`` > 1 the training loader serves this rank's slice of each global batch and the
    validation loader this rank's share of the held-out images (image i on rank i mod world_size).
    """
    if cfg.dataset == "shards":
        return _shard_data(cfg, seed=seed, device=device, channels_last=channels_last, rank=rank,
                           world_size=world_size)
    pool, test, source = _read(cfg)
    if cfg.jpeg_quality:  # every image through a JPEG at this quality, training and held-out alike
        pool, test = pool.jpeg(cfg.jpeg_quality), test.jpeg(cfg.jpeg_quality) if test is not None else None
        source += f", re-encoded as JPEG q{cfg.jpeg_quality}"
    val_size = resolve_val_size(cfg.val_size, len(pool))
    if test is not None:
        train, val, how = pool, test, "official test set"
    elif val_size:
        if val_size >= len(pool):
            raise DataError(f"data.val_size = {val_size} leaves no training images: {source} has {len(pool):,}")
        train_idx, val_idx = stratified_split(pool.labels, val_size, seed=cfg.split_seed)
        train, val = pool.subset(train_idx), pool.subset(val_idx)
        how = f"stratified hold-out, split_seed {cfg.split_seed}"
    else:
        train, val, how = pool, None, "no validation"
    if cfg.limit and cfg.limit < len(train):
        train = train.subset(stratified_subset(train.labels, cfg.limit, seed=mix_seed(cfg.split_seed, 1)))
    if len(train) < cfg.batch_size:
        raise DataError(f"{len(train):,} training images are fewer than one batch (data.batch_size = {cfg.batch_size})")

    if stats is not None:
        mean, std = _given_stats(stats, shape=tuple(train.images.shape[1:]))
    elif cfg.normalize == "pixel":  # He et al.: the mean image subtracted, no division
        mean, std = per_pixel_mean(train.images), (1.0,) * train.images.shape[1]
    else:
        mean, std = per_channel_stats(train.images)
    # He et al.'s 4-pixel padding is an eighth of a 32x32 image: smaller images are padded in proportion
    padding = max(1, round(4 * int(train.images.shape[-1]) / 32))
    train_loader = BatchLoader(train, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment, mean=mean,
                               std=std, seed=seed, drop_last=True, device=device, channels_last=channels_last,
                               rank=rank, world_size=world_size, padding=min(4, padding))
    # Evaluation shards the held-out images over the ranks, every image on exactly one rank (no padding);
    # the trainer sums the ranks' counts.
    val_part = val if val is None or world_size == 1 else val.subset(torch.arange(rank, len(val), world_size))
    val_loader = None if val is None else BatchLoader(
        val_part, batch_size=cfg.eval_batch_size, shuffle=False, augment=False, mean=mean, std=std, seed=seed,
        drop_last=False, device=device, channels_last=channels_last)
    height, width = train.images.shape[-2:]
    val_text = f"{len(val):,} val ({how})" if val is not None else "no validation"
    description = (f"{source}: {len(train):,} train / {val_text}, {len(pool.classes)} classes, {height}x{width}, "
                   f"augment {f'pad {min(4, padding)} + crop + flip' if cfg.augment else 'off'}")
    return DataBundle(train_loader, val_loader, len(pool.classes), list(pool.classes), int(height), mean, std,
                      description)


def _shard_data(cfg: DataConfig, *, seed: int, device, channels_last: bool, rank: int, world_size: int) -> DataBundle:
    """WebDataset shards streamed from disk (``reslab data pack``), normalised with ImageNet's statistics."""
    from reslab.data.imagenet import MEAN, STD
    from reslab.data.shards import read_index
    from reslab.data.stream import ShardLoader

    if not cfg.path:
        raise DataError("data.path must name a folder packed by reslab data pack")
    size = cfg.image_size or 224
    common = dict(mean=MEAN, std=STD, image_size=size, seed=seed, rank=rank, world_size=world_size,
                  workers=cfg.workers, device=device, channels_last=channels_last)
    train = ShardLoader(cfg.path, batch_size=cfg.batch_size, train=True, recipe=cfg.recipe, **common)
    val = None
    if cfg.val_path:
        if read_index(cfg.val_path)["classes"] != train.classes:
            raise DataError(f"{cfg.val_path} has other classes than {cfg.path}: pack it with --classes-from {cfg.path}")
        val = ShardLoader(cfg.val_path, batch_size=cfg.eval_batch_size, train=False, **common)
    description = (f"shards ({cfg.path}): {train.total:,} train / "
                   + (f"{val.total:,} val ({cfg.val_path})" if val else "no validation")
                   + f", {len(train.classes)} classes, {size}x{size}, augment {cfg.recipe}")
    return DataBundle(train, val, len(train.classes), train.classes, size, MEAN, STD, description)


def resolve_val_size(val_size: int, pool: int) -> int:
    """``auto`` (-1): 5,000 held-out images (He et al.'s 45k/5k on CIFAR), or 10% of a set under 50,000."""
    return min(5000, pool // 10) if val_size < 0 else val_size


def build_eval_data(cfg: DataConfig, *, stats: Stats, device: str | torch.device = "cpu",
                    channels_last: bool = True, ten_crop: bool = False) -> tuple[BatchLoader, list[str], str]:
    """Every image of a dataset from outside a run, for evaluation: the official test set of CIFAR
    (``cifar10``/``cifar100``), else the whole folder or sample, nothing held out or split off.
    ``ten_crop``: He et al.'s 10-crop testing (shards only). Returns the loader, the class names and a
    description."""
    if ten_crop and cfg.dataset != "shards":
        raise DataError(f"10-crop testing needs full-size images (data.dataset = \"shards\"), not {cfg.dataset}")
    if cfg.dataset == "shards":
        from reslab.data.stream import ShardLoader

        loader = ShardLoader(cfg.path, batch_size=cfg.eval_batch_size, train=False, mean=stats["mean"],
                             std=stats["std"], image_size=cfg.image_size or 224, workers=cfg.workers, device=device,
                             channels_last=channels_last, ten_crop=ten_crop)
        crops = ", 10 crops each" if ten_crop else ""
        return loader, loader.classes, f"shards ({cfg.path}): all {loader.total:,} images{crops}"
    if cfg.dataset in CIFAR:
        if not cfg.path:
            raise DataError(f"data.path must name the {cfg.dataset} folder or archive")
        images, source = load_cifar(cfg.path, name=cfg.dataset, train=False), f"{cfg.dataset} test set ({cfg.path})"
        images = images.resized(cfg.image_size) if cfg.image_size else images
    else:
        images, _, source = _read(cfg)
    mean, std = _given_stats(stats, shape=tuple(images.images.shape[1:]))
    loader = BatchLoader(images, batch_size=cfg.eval_batch_size, shuffle=False, augment=False, mean=mean, std=std,
                         drop_last=False, device=device, channels_last=channels_last)
    return loader, list(images.classes), f"{source}: all {len(images):,} images"


def _given_stats(stats: Stats, *, shape: tuple[int, ...]):
    """Statistics handed in (a checkpoint's): a mean per channel, or a mean image (C, H, W) of the images'
    own size; a positive std per channel."""
    mean, std = (stats["mean"], stats["std"]) if isinstance(stats, Mapping) else stats
    channels = shape[0]
    try:
        mean_t, std = torch.as_tensor(mean, dtype=torch.float64), tuple(float(s) for s in std)
    except (TypeError, ValueError):
        raise DataError(f"normalisation statistics are not numbers: mean {mean!r}") from None
    fits = tuple(mean_t.shape) in ((channels,), tuple(shape))
    if not fits or len(std) != channels or min(std) <= 0:
        raise DataError(f"normalisation statistics must give {channels} means (or a {'x'.join(map(str, shape))} "
                        f"mean image) and {channels} positive stds, got mean of shape {tuple(mean_t.shape)}, "
                        f"std {std}")
    return (tuple(mean_t.tolist()) if mean_t.dim() == 1 else mean_t.tolist()), std


def _read(cfg: DataConfig) -> tuple[ArrayDataset, ArrayDataset | None, str]:
    """``(training pool, official test set or None, a name for messages)``."""
    if cfg.dataset not in DATASETS:
        raise DataError(f"unknown dataset {cfg.dataset!r}; known: {', '.join(DATASETS)}")
    if cfg.test_split and cfg.dataset not in CIFAR:
        raise DataError(f"data.test_split needs cifar10 or cifar100: {cfg.dataset} has no official test set")
    cache_dir = cfg.cache_dir or None
    # data.image_size on an in-memory set: every image resized once, after loading (the demo's 16x16)
    size = cfg.image_size or None
    if cfg.dataset == "sample":
        pool = load_sample(cache_dir)
        return (pool.resized(size) if size else pool), None, "CIFAR-10 sample (embedded)"
    if not cfg.path:
        raise DataError(f"data.path must name the {cfg.dataset} folder or archive")
    if cfg.dataset in CIFAR:
        pool = load_cifar(cfg.path, name=cfg.dataset, train=True, download=cfg.download)
        test = load_cifar(cfg.path, name=cfg.dataset, train=False) if cfg.test_split else None
        if size:
            pool, test = pool.resized(size), test.resized(size) if test is not None else None
        return pool, test, f"{cfg.dataset} ({cfg.path})"
    # "folder": decoded whole into memory, which suits CIFAR-sized folders; a larger set is packed into
    # shards and streamed (data.dataset = "shards"), which _read refuses to decode into memory.
    dataset = load_image_folder(cfg.path, cache_dir=cache_dir, image_size=cfg.image_size or None,
                                max_pixels=cfg.max_image_pixels)
    return dataset, None, f"image folder ({cfg.path})"
