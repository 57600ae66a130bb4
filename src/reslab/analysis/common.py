"""Helpers shared by the analyses: plain evaluation loops (analysis never uses the trainer)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """(mean cross-entropy, error) of ``model`` in eval mode over ``batches``."""
    was_training = model.training
    model.eval()
    loss = errors = seen = 0
    for x, y in batches:
        logits = model(x).float()
        loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        errors += int((logits.argmax(1) != y).sum())
        seen += len(y)
    model.train(was_training)
    return loss / max(1, seen), errors / max(1, seen)


def fixed_batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
