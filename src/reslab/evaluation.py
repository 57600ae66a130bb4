"""The one evaluation loop: the trainer, ``reslab eval`` and the analyses all count errors here.

With the same model, images, precision and flip setting it returns the same error count wherever it
is called from, which is what lets ``reslab eval RUN`` reproduce the error a run reported.
Loss and error counts are summed on the model's device and read back once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor, nn

from reslab.device import autocast


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy, without label smoothing
    errors: int
    images: int
    confusion: Tensor | None = None  # (classes, classes) counts: rows true class, columns predicted
    errors5: int = 0  # images whose class is not among the 5 highest logits (top-5 error)

    @property
    def error(self) -> float:
        return self.errors / max(1, self.images)

    @property
    def error5(self) -> float:
        return self.errors5 / max(1, self.images)

    def per_class_accuracy(self) -> list[float]:
        c = self.confusion
        return (c.diag().double() / c.sum(1).clamp(min=1).double()).tolist() if c is not None else []


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, precision: str = "fp32",
             tta_flip: bool = False, num_classes: int | None = None) -> Evaluation:
    """``model`` in eval mode over ``batches``; with ``tta_flip`` the logits of each image and its mirror
    image are averaged. A batch of shape (B, crops, C, H, W) holds several crops of each image (10-crop
    testing): their logits are averaged. ``precision`` is the autocast of the forward passes (fp32: none)."""
    was_training = model.training
    model.eval()
    loss = errors = errors5 = confusion = None
    seen = 0
    try:
        for x, y in batches:
            crops = x.shape[1] if x.dim() == 5 else 0
            if crops:
                x = x.flatten(0, 1)
            with autocast(x.device, precision):
                logits = model(x)
                if tta_flip:
                    logits = (logits.float() + model(x.flip(3)).float()) / 2
            logits = logits.float()
            if crops:
                logits = logits.unflatten(0, (-1, crops)).mean(1)
            batch_loss = nn.functional.cross_entropy(logits, y, reduction="sum")
            pred = logits.argmax(1)
            wrong = (pred != y).sum()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            wrong5 = (top != y[:, None]).all(dim=1).sum()
            loss = batch_loss if loss is None else loss + batch_loss
            errors = wrong if errors is None else errors + wrong
            errors5 = wrong5 if errors5 is None else errors5 + wrong5
            seen += len(y)
            if num_classes is not None:
                counts = torch.bincount(y * num_classes + pred, minlength=num_classes * num_classes)
                confusion = counts if confusion is None else confusion + counts
    finally:
        model.train(was_training)
    return Evaluation(loss=float(loss) / max(1, seen) if loss is not None else 0.0,
                      errors=int(errors) if errors is not None else 0, images=seen,
                      errors5=int(errors5) if errors5 is not None else 0,
                      confusion=None if confusion is None else confusion.cpu().view(num_classes, num_classes))


def reduce_over(local: Evaluation, dist, device: torch.device | str = "cpu") -> Evaluation:
    """Sum the ranks' evaluations of their shares of the images (each image on exactly one rank)."""
    if not dist.distributed:
        return local
    parts = [torch.tensor([local.loss * local.images, local.errors, local.images, local.errors5], dtype=torch.float64)]
    if local.confusion is not None:
        parts.append(local.confusion.flatten().to(torch.float64))
    total = dist.all_reduce_sum(torch.cat(parts).to(device)).cpu()
    images, errors = int(total[2]), int(total[1])
    confusion = None if local.confusion is None else total[4:].round().long().view_as(local.confusion)
    return Evaluation(loss=float(total[0]) / max(1, images), errors=errors, images=images, confusion=confusion,
                      errors5=int(total[3]))


def loss_and_error(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """(mean cross-entropy, error): the analyses' view of :func:`evaluate` (precision from the caller's autocast)."""
    result = evaluate(model, batches)
    return result.loss, result.error


def fixed_batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """Held-in-memory images cut into batches of ``batch_size`` (the last one may be smaller)."""
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
