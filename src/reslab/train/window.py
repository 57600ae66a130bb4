"""The training figures between two reads: loss and errors summed on the device, read back rarely.

A GPU that hands a number back to the host waits for all queued work first, so reading the loss at
every step stalls it at every step. The window keeps each step's summed loss and the error count on
the device and is read (and summed over ranks) only every ``log_every`` steps, before an evaluation
and at the end: the one host read of the training loop. A non-finite loss is found then, and named
by its own step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from reslab.dist import SINGLE, Dist
from reslab.errors import TrainingDiverged


class MetricWindow:
    def __init__(self, device: torch.device, capacity: int, dist: Dist = SINGLE) -> None:
        self.device, self.dist = device, dist
        # per pending step: loss x images; grows on demand, so a huge log_every does not allocate it all up front
        self._losses = torch.zeros(min(max(1, capacity), 1024), device=device)
        self._errors = torch.zeros((), device=device)
        self._pending = 0  # steps recorded since the last read
        self._first_step = 0
        self._images = 0  # images of the pending steps on this rank (known without a read)
        self.reset()

    def reset(self) -> None:
        """Start the totals again (after an evaluation); pending device sums are kept."""
        self.loss, self.errors, self.seen, self.time = 0.0, 0.0, 0, 0.0

    @torch.no_grad()
    def record(self, step: int, loss: Tensor, logits: Tensor, target: Tensor) -> None:
        """Step ``step``'s mean loss and predictions, added on the device (no host read). Several calls
        for one step (the parts of an accumulated batch) add up in that step's slot."""
        if self._pending == 0:
            self._first_step = step
        slot = step - self._first_step
        if slot == len(self._losses):  # more steps than expected between reads: grow
            self._losses = torch.cat([self._losses, torch.zeros_like(self._losses)])
        self._losses[slot] += loss.detach().float() * len(target)
        self._errors += (logits.argmax(1) != target).sum()
        self._pending = slot + 1
        self._images += len(target)

    def read(self, *, stop: bool = False) -> bool:
        """Read the pending sums (summed over ranks), add them to the totals, and check every step's loss.

        ``stop``: this rank wants to stop (a signal); returns whether any rank does, so that all ranks
        stop at the same step. Raises :class:`TrainingDiverged` naming the first non-finite step.
        """
        n = self._pending
        vec = torch.cat([self._losses[:n], self._errors.view(1),
                         torch.tensor([float(self._images), 1.0 if stop else 0.0], device=self.device)])
        values = self.dist.all_reduce_sum(vec).tolist()
        step_losses, errors, images, stops = values[:n], values[n], values[n + 1], values[n + 2]
        for i, v in enumerate(step_losses):
            if not math.isfinite(v):
                raise TrainingDiverged(f"loss became {v} at step {self._first_step + i}")
        self.loss += sum(step_losses)
        self.errors += errors
        self.seen += int(images)
        self._losses.zero_()
        self._errors.zero_()
        self._pending, self._images = 0, 0
        return stops > 0

    def metrics(self) -> dict[str, float]:
        if not self.seen:
            return {}
        return {"train_loss": self.loss / self.seen, "train_error": self.errors / self.seen,
                "images_per_sec": self.seen / self.time if self.time > 0 else 0.0}
