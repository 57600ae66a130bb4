"""The lecture's optimizers, written from their update rules, and the parameter-group policy.

``create_optimizer(name, params, **hp)`` builds one by name: ``sgd momentum nesterov adagrad rmsprop adam
adamw``. Each is a ``torch.optim.Optimizer`` whose rule is written out in its docstring exactly as
implemented; ``impl="torch"`` builds the matching ``torch.optim`` optimizer instead, as a reference.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from reslab.errors import ConfigError
from reslab.optim.adam import Adam, AdamW
from reslab.optim.adaptive import Adagrad, RMSprop
from reslab.optim.base import FlatOptimizer
from reslab.optim.sgd import SGD, Momentum
from reslab.registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
OPTIMIZERS.register("sgd", SGD)
OPTIMIZERS.register("momentum", Momentum)
OPTIMIZERS.register("nesterov", lambda params, **hp: Momentum(params, nesterov=True, **hp))
OPTIMIZERS.register("adagrad", Adagrad)
OPTIMIZERS.register("rmsprop", RMSprop)
OPTIMIZERS.register("adam", Adam)
OPTIMIZERS.register("adamw", AdamW)
OPTIMIZER_NAMES = tuple(OPTIMIZERS.names())

# The hyperparameters each rule takes (the config carries them all; each optimizer gets its own).
HYPERPARAMETERS = {
    "sgd": ("lr", "weight_decay"),
    "momentum": ("lr", "momentum", "weight_decay"),
    "nesterov": ("lr", "momentum", "weight_decay"),
    "adagrad": ("lr", "weight_decay", "eps"),
    "rmsprop": ("lr", "rho", "eps", "momentum", "weight_decay"),
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay"),
}


def param_groups(model: nn.Module, *, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Two groups: weights with decay; biases and normalisation parameters (1-D tensors) without it."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _torch_optimizer(name: str, params: Iterable, hp: dict[str, Any]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer with the same rule (fastest available implementation)."""
    fused = {"fused": True}
    if name == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.0), **fused)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp.get("momentum", 0.9),
                               weight_decay=hp.get("weight_decay", 0.0), nesterov=name == "nesterov", **fused)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=hp["lr"], eps=hp.get("eps", 1e-10),
                                   weight_decay=hp.get("weight_decay", 0.0), fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=hp["lr"], alpha=hp.get("rho", 0.99), eps=hp.get("eps", 1e-8),
                                   momentum=hp.get("momentum", 0.0), weight_decay=hp.get("weight_decay", 0.0),
                                   foreach=True)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=hp["lr"], betas=hp.get("betas", (0.9, 0.999)), eps=hp.get("eps", 1e-8),
               weight_decay=hp.get("weight_decay", 0.0), fused=True)


def create_optimizer(name: str, params: Iterable, *, impl: str = "reslab", **hp: Any) -> torch.optim.Optimizer:
    """An optimizer by the lecture's name. ``impl``: ``"reslab"`` (its own rules, fast path chosen per
    device), ``"reference"`` (the same rules, parameter by parameter), or ``"torch"`` (``torch.optim``)."""
    factory = OPTIMIZERS.get(name)
    if impl == "torch":
        return _torch_optimizer(name, params, hp)
    if impl not in ("reslab", "reference"):
        raise ConfigError(f"optim.impl must be reslab, reference or torch, got {impl!r}")
    try:
        return factory(params, impl="auto" if impl == "reslab" else "reference", **hp)
    except TypeError as e:
        raise ConfigError(f"optimizer {name!r}: {e}") from None


def optimizer_from_config(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer of an ``OptimConfig`` for ``model``, with the parameter-group policy applied."""
    groups = param_groups(model, weight_decay=cfg.weight_decay, decay_norm_and_bias=cfg.decay_norm_and_bias)
    if cfg.name not in HYPERPARAMETERS:
        OPTIMIZERS.get(cfg.name)  # raises the unknown-name error
    hp = {k: getattr(cfg, k) for k in HYPERPARAMETERS[cfg.name]}
    return create_optimizer(cfg.name, groups, impl=cfg.impl, **hp)


__all__ = ["SGD", "Momentum", "Adagrad", "RMSprop", "Adam", "AdamW", "FlatOptimizer", "OPTIMIZERS",
           "OPTIMIZER_NAMES", "create_optimizer", "optimizer_from_config", "param_groups"]
