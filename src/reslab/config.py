"""Typed run configuration: frozen dataclasses, TOML files, ``--section.key=value`` overrides.

``load_config(path, overrides)`` returns a validated :class:`RunConfig`; any bad key or value is a
:class:`ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reslab.errors import ConfigError, ConfigNotFound
from reslab.typed import AUTO, build as _build  # AUTO: "auto" in a config file, re-exported for its readers


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "sample"  # "sample" (embedded), "cifar10", "cifar100", "folder", "shards" (reslab data pack)
    path: str = ""  # dataset folder or archive; for "folder" a class-per-folder tree or .tar/.tar.gz of one
    download: bool = False  # cifar10/cifar100: fetch from the official address into ``path`` if missing
    val_size: int = AUTO  # images held out (stratified); "auto": 5,000, or 10% of a set under 50,000; 0 = none
    split_seed: int = 0  # seed of the held-out split (fixed across runs so runs are comparable)
    test_split: bool = False  # cifar10/cifar100: validate on the official test set instead of a hold-out
    limit: int = 0  # use only this many training images (stratified), 0 = all
    augment: bool = True  # 4-pixel pad + random crop + horizontal flip (He et al. 2016)
    batch_size: int = 128
    eval_batch_size: int = 1000
    cache_dir: str = ""  # decoded-image cache; "" = $RESLAB_CACHE or ~/.cache/reslab
    image_size: int = 0  # resize every image to this square side (folder, sample, cifar); 0 = keep the size
    max_image_pixels: int = 40_000_000  # "folder": larger images (by their header) are refused before decoding
    val_path: str = ""  # "shards": the validation shards; workers: decoding processes; recipe: inception, he2016
    workers: int = 2
    recipe: str = "inception"
    normalize: str = "channel"  # "channel": mean/std per channel; "pixel": He et al.'s per-pixel mean subtracted
    jpeg_quality: int = 0  # re-encode every image (training and held-out) as JPEG at this quality once; 0 = as read


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet20"
    options: dict[str, Any] = field(default_factory=dict)  # builder options: shortcut, survival_prob ...


@dataclass(frozen=True)
class OptimConfig:
    name: str = "momentum"  # sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    rho: float = 0.9  # RMSProp decay rate of the squared-gradient average
    decay_norm_and_bias: bool = False  # apply weight decay to BN parameters and biases too
    linear_scaling: bool = False  # Goyal et al.: lr x batch / 256, reached by a linear warm-up over 5 epochs
    impl: str = "reslab"  # "reslab" (its own rules, fast path), "reference" (same rules, per tensor), "torch"


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "multistep"  # constant, step, multistep, exponential, cosine, onecycle, plateau
    milestones: tuple[int, ...] = (32000, 48000)  # iterations (multistep)
    gamma: float = 0.1
    step_size: int = 0  # iterations (step)
    min_lr: float = 0.0  # floor of cosine / one-cycle
    warmup_steps: int = 0  # linear warm-up from warmup_lr to lr over this many iterations
    warmup_lr: float = 0.0
    warmup_until_error: float = 0.0  # He et al. ResNet-110: hold warmup_lr until training error < this
    pct_start: float = 0.25  # one-cycle: fraction of the run spent rising
    patience: int = 5  # plateau: evaluations without improvement before the rate drops
    factor: float = 0.1  # plateau: multiplicative drop


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 0  # iterations; 0 = use epochs
    epochs: int = 0
    eval_every: int = 0  # iterations between evaluations; 0 = once per epoch
    log_every: int = 50  # iterations between train-metric log lines
    checkpoint_every: int = 0  # iterations between checkpoints; 0 = at every evaluation
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    precision: str = "auto"  # auto (bf16 on CPU/CUDA where supported), bf16, fp16, fp32
    channels_last: bool = True
    compile: bool = False
    grad_clip: float = 0.0  # max gradient norm, 0 = off
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # exponential moving average of the weights, evaluated instead; 0 = off
    tta_flip: bool = False  # evaluate on the image and its mirror, average the logits
    early_stopping_patience: int = 0  # evaluations; 0 = off
    early_stopping_min_delta: float = 0.0
    restore_best: bool = True  # with early stopping: end with the best weights
    tensorboard: bool = True
    record_gradients: bool = False  # per-layer weight-gradient norms at each evaluation, in the run folder
    accumulate: int = 1  # run each step's batch in this many parts (fewer processes, same global batch)
    sync_batchnorm: bool = False  # several GPU processes: BatchNorm statistics over the global batch (NCCL only)


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    experiment: dict[str, Any] = field(default_factory=dict)  # reslab experiment's options (checked by it)


CHOICES = {
    "data.dataset": ("sample", "cifar10", "cifar100", "folder", "shards"),
    "data.recipe": ("inception", "he2016"),
    "data.normalize": ("channel", "pixel"),
    "train.precision": ("auto", "bf16", "fp16", "fp32"),
    "optim.impl": ("reslab", "reference", "torch"),
}
POSITIVE = {"train.accumulate", "data.max_image_pixels", "data.batch_size", "data.eval_batch_size", "optim.lr", "train.log_every"}
NON_NEGATIVE = {"data.limit", "data.image_size", "data.workers", "optim.weight_decay", "optim.momentum", "optim.eps",
                "train.steps", "train.epochs", "train.eval_every", "train.checkpoint_every", "train.grad_clip",
                "schedule.warmup_steps", "schedule.warmup_lr", "schedule.min_lr", "schedule.step_size",
                "train.early_stopping_patience", "train.early_stopping_min_delta"}
UNIT_INTERVAL = {"train.label_smoothing", "train.ema_decay", "optim.rho", "schedule.pct_start",
                 "schedule.warmup_until_error", "schedule.gamma", "schedule.factor"}


def _validate(cfg: RunConfig) -> None:
    for section in ("data", "model", "optim", "schedule", "train"):  # [experiment]: by its experiment
        sub = getattr(cfg, section)
        for f in dataclasses.fields(sub):
            key, value = f"{section}.{f.name}", getattr(sub, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value}")
            if key in CHOICES and value not in CHOICES[key]:
                raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
            if key in POSITIVE and not value > 0:
                raise ConfigError(f"{key} must be positive, got {value}")
            if key in NON_NEGATIVE and value < 0:
                raise ConfigError(f"{key} must not be negative, got {value}")
            if key in UNIT_INTERVAL and not 0 <= value <= 1:
                raise ConfigError(f"{key} must be between 0 and 1, got {value}")
    if not 0 <= cfg.data.jpeg_quality <= 100:
        raise ConfigError(f"data.jpeg_quality must be 0 (keep) or a JPEG quality 1-100, got {cfg.data.jpeg_quality}")
    if cfg.data.val_size < 0 and cfg.data.val_size != AUTO:
        raise ConfigError(f"data.val_size must be \"auto\" or a number of images >= 0, got {cfg.data.val_size}")
    if not cfg.name or "/" in cfg.name or cfg.name in (".", ".."):
        raise ConfigError(f"name must be a plain folder name, got {cfg.name!r}")
    if cfg.train.steps == 0 and cfg.train.epochs == 0:
        raise ConfigError("set train.steps or train.epochs (both are 0)")
    if cfg.train.steps and cfg.train.epochs:
        raise ConfigError(f"set only one of train.steps ({cfg.train.steps}) and train.epochs ({cfg.train.epochs}); "
                          "to override one, set the other to 0 (e.g. --train.steps=500 --train.epochs=0)")
    if any(not 0 < b < 1 for b in cfg.optim.betas):
        raise ConfigError(f"optim.betas must lie in (0, 1), got {cfg.optim.betas}")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {p} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` (a leading ``--`` is allowed); the value is read as TOML, else as a string."""
    body = text[2:] if text.startswith("--") else text
    if "=" not in body:
        raise ConfigError(f"override {text!r} must look like --section.key=value")
    key, raw = body.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    cfg = _build(RunConfig, data)
    _validate(cfg)
    return cfg


def same_recipe(stored: Any, config: dict[str, Any]) -> bool:
    """Whether a run's stored config (a nested dict) is the recipe ``config``. A run written before a
    setting existed ran with that setting's default, so the stored config is read through today's
    schema (missing keys take their defaults) before comparing; one naming a setting that no longer
    exists, or an invalid value, is not the same recipe."""
    if stored == config:
        return True
    if not isinstance(stored, dict):
        return False
    try:
        return as_dict(config_from_dict(stored)) == config
    except (ConfigError, TypeError, ValueError, KeyError):
        return False


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the nested ``data`` with each ``--section.key=value`` set."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return data


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file (give a .toml file)")
    if not path.is_file():
        raise ConfigNotFound(f"config file not found: {path}", path)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None


def load_config(path: str | Path | None, overrides: Sequence[str] = (), *,
                base: dict[str, Any] | None = None) -> RunConfig:
    """Read a TOML file (or start from ``base``, else the defaults, when ``path`` is None) and apply overrides."""
    data = read_toml(path) if path is not None else (base or {})
    return config_from_dict(apply_overrides(data, overrides))


def build_options(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """A frozen options dataclass from a plain table (e.g. ``[experiment]``), keys and types checked."""
    return _build(cls, data, prefix)


def as_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config, TOML- and JSON-ready (tuples become lists)."""
    def clean(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    return clean(dataclasses.asdict(cfg))
