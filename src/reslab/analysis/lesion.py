"""Lesion study: delete residual blocks at test time and watch the error.

A deleted block becomes its shortcut: H(x) = ReLU(shortcut(x)) in the post-activation form (which is
x itself for the identity shortcut, as x >= 0 there), shortcut(x) in the pre-activation form. In a
plain network the same operation removes the block's layers from the only path there is. Blocks whose
shortcut changes dimensions (zero padding or a projection, not the identity) are reported apart; a
plain block that changes the shape cannot be deleted at all (its error is recorded as ``None``).

References:
    Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks.
    NeurIPS 2016 (Figures 3-5).
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from reslab.evaluation import loss_and_error
from reslab.models.protocol import ShortcutBlock, shortcut_blocks


def is_downsampling(block: ShortcutBlock) -> bool:
    """The block's shortcut is not the identity: zero padding or a projection, or, in a plain network,
    the block changes the shape (it has no shortcut to fall back to)."""
    return block.downsample is not None or block.changes_shape


def deletable(block: ShortcutBlock) -> bool:
    """A block can be deleted when something is left to carry its input on: its shortcut (whatever it
    is), or, in a plain network, nothing at all when the shape does not change."""
    return block.has_shortcut or not block.changes_shape


def _skip_forward(block: ShortcutBlock):
    if not deletable(block):
        raise ValueError("a plain block that changes the shape cannot be deleted: nothing is left to carry it")

    def forward(x: Tensor) -> Tensor:
        if block.downsample is None:
            return x  # identity shortcut: ReLU(x) = x for the non-negative input of a post-activation block
        out = block.shortcut(x)
        return torch.relu(out) if block.post_activation else out
    return forward


@contextlib.contextmanager
def deleted(blocks: Sequence[nn.Module], indices: Iterable[int]):
    """Temporarily replace the chosen blocks by their shortcuts."""
    chosen = [blocks[i] for i in indices]
    for b in chosen:
        b.forward = _skip_forward(b)
    try:
        yield
    finally:
        for b in chosen:
            del b.forward  # back to the class's forward


@contextlib.contextmanager
def reordered(model: nn.Module, swaps: Sequence[tuple[int, int]]):
    """Temporarily swap pairs of blocks (positions in ``model.blocks()``) inside their stages."""
    stages = [getattr(model, name) for name in model.stage_names]
    where = [(s, i) for s in stages for i in range(len(s))]
    originals = [(s, i, s[i]) for s, i in where]
    try:
        for a, b in swaps:
            (sa, ia), (sb, ib) = where[a], where[b]
            sa[ia], sb[ib] = sb[ib], sa[ia]
        yield
    finally:
        for s, i, m in originals:
            s[i] = m


def swappable_pairs(model: nn.Module) -> list[int]:
    """Blocks with an identity shortcut (same input and output shape), the ones that can trade places."""
    return [i for i, b in enumerate(shortcut_blocks(model, "lesion study")) if not is_downsampling(b)]


def lesion_study(model: nn.Module, batches: list[tuple[Tensor, Tensor]], *, draws: int = 10, seed: int = 0,
                 max_k: int | None = None, reorder_swaps: Sequence[int] = (1, 2, 4, 8)) -> dict:
    """Errors after deleting each block, k random blocks (k = 1..n), and after k random swaps."""
    blocks = shortcut_blocks(model, "lesion study")
    rng = random.Random(seed)
    _, base = loss_and_error(model, batches)
    single = []
    for i, b in enumerate(blocks):
        err = None  # a plain down-sampling block: no deletion to make
        if deletable(b):
            with deleted(blocks, [i]):
                _, err = loss_and_error(model, batches)
        single.append({"block": i, "downsampling": is_downsampling(b), "error": err})
    identity = [i for i, b in enumerate(blocks) if not is_downsampling(b)]
    random_k = []
    for k in range(1, (max_k or len(identity)) + 1):
        errs = []
        for _ in range(draws):
            with deleted(blocks, rng.sample(identity, k)):
                errs.append(loss_and_error(model, batches)[1])
        t = torch.tensor(errs)
        random_k.append({"k": k, "mean": float(t.mean()), "std": float(t.std()) if len(errs) > 1 else 0.0,
                         "errors": errs})
    reorder = []
    if hasattr(model, "stage_names"):
        for k in reorder_swaps:
            errs = []
            for _ in range(draws):
                swaps = []
                for _ in range(k):  # swap two identity blocks of the same stage (their shapes agree)
                    stage_of = {}
                    offset = 0
                    for si, name in enumerate(model.stage_names):
                        for j in range(len(getattr(model, name))):
                            stage_of[offset + j] = si
                        offset += len(getattr(model, name))
                    same = [(a, b) for a in identity for b in identity if a < b and stage_of[a] == stage_of[b]]
                    if same:
                        swaps.append(rng.choice(same))
                with reordered(model, swaps):
                    errs.append(loss_and_error(model, batches)[1])
            t = torch.tensor(errs)
            reorder.append({"swaps": k, "mean": float(t.mean()), "std": float(t.std()) if len(errs) > 1 else 0.0})
    return {"baseline_error": base, "blocks": len(blocks), "single": single, "random_k": random_k,
            "reorder": reorder}
