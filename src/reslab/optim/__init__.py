"""Optimizers and the parameter-group policy.

``create_optimizer(name, params, **hp)`` builds an optimizer by the lecture's names. Until reslab's own
update rules land, ``torch.optim`` stands in behind the same names (``impl="torch"``).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from reslab.errors import ConfigError

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


def param_groups(model: nn.Module, *, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Two groups: weights with decay; biases and normalisation parameters (1-D tensors) without it."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _torch_optimizer(name: str, params: Iterable, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                     betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "nesterov")
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, eps=eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_NAMES)}")


def create_optimizer(name: str, params: Iterable, *, impl: str = "torch", **hp: Any) -> torch.optim.Optimizer:
    if name not in OPTIMIZER_NAMES:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_NAMES)}")
    return _torch_optimizer(name, params, **hp)


def optimizer_from_config(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer of an ``OptimConfig`` for ``model``, with the parameter-group policy applied."""
    groups = param_groups(model, weight_decay=cfg.weight_decay, decay_norm_and_bias=cfg.decay_norm_and_bias)
    return create_optimizer(cfg.name, groups, impl=cfg.impl, lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps, alpha=cfg.alpha)
