"""Residual networks unravelled: 2^n paths of lengths 0..n, and how much gradient each length carries.

A network of n residual blocks has C(n, k) paths that pass through k residual branches. Following
Veit et al., the gradient carried by paths of length k is measured by letting the gradient flow through
the residual branch of k randomly chosen blocks (their shortcut detached) and only through the shortcut
of the others (their branch detached); the forward pass is unchanged. The norm of the gradient reaching
the first block's input, averaged over draws and multiplied by C(n, k), is the total gradient magnitude
contributed by paths of length k.

References:
    Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks.
    NeurIPS 2016 (Figure 6).
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Sequence

import torch
from torch import Tensor, nn

from reslab.models.protocol import ShortcutBlock, shortcut_blocks


def path_length_counts(n: int) -> list[int]:
    """Number of paths of each length 0..n through n residual blocks: the binomial coefficients C(n, k)."""
    return [math.comb(n, k) for k in range(n + 1)]


@contextlib.contextmanager
def gradient_routes(blocks: Sequence[ShortcutBlock], through_branch: set[int]):
    """Blocks in ``through_branch`` pass the gradient through F only; the others through the shortcut only."""
    def make(block, branch_only: bool):
        def forward(x: Tensor) -> Tensor:
            f, s = block.residual(x), block.shortcut(x)
            f, s = (f, s.detach()) if branch_only else (f.detach(), s)
            out = f + s
            return torch.relu(out) if block.post_activation else out
        return forward

    for i, b in enumerate(blocks):
        b.forward = make(b, i in through_branch)
    try:
        yield
    finally:
        for b in blocks:
            del b.forward


def gradient_per_path_length(model: nn.Module, x: Tensor, y: Tensor, *, draws: int = 20, seed: int = 0,
                             lengths: Sequence[int] | None = None) -> dict:
    """Mean gradient norm at the first block's input for single paths of each length, and the totals."""
    blocks = shortcut_blocks(model, "path analysis")
    n = len(blocks)
    rng = random.Random(seed)
    first_input: list[Tensor] = []
    hook = blocks[0].register_forward_pre_hook(lambda m, args: first_input.append(args[0]))
    counts = path_length_counts(n)
    model.eval()  # fixed BN statistics: the network is a fixed function while paths are compared
    rows = []
    try:
        for k in lengths if lengths is not None else range(n + 1):
            norms = []
            for _ in range(draws if 0 < k < n else 1):
                chosen = set(rng.sample(range(n), k))
                first_input.clear()
                with gradient_routes(blocks, chosen):
                    out = model(x)
                    inp = first_input[0]
                    loss = nn.functional.cross_entropy(out.float(), y)
                    (g,) = torch.autograd.grad(loss, inp)
                norms.append(float(g.norm() / len(y) ** 0.5))
            mean = sum(norms) / len(norms)
            rows.append({"length": k, "paths": counts[k], "mean_grad_norm": mean, "total_grad": mean * counts[k]})
    finally:
        hook.remove()
    total = sum(r["total_grad"] for r in rows)
    for r in rows:
        r["share"] = r["total_grad"] / total if total > 0 else 0.0
    # the effective paths: the shortest range of lengths around the peak holding 90% of the total gradient
    ordered = sorted(rows, key=lambda r: -r["share"])
    acc, chosen_lengths = 0.0, []
    for r in ordered:
        acc += r["share"]
        chosen_lengths.append(r["length"])
        if acc >= 0.9:
            break
    peak = max(rows, key=lambda r: r["total_grad"])["length"]
    return {"blocks": n, "rows": rows, "peak_length": peak,
            "effective_range": [min(chosen_lengths), max(chosen_lengths)],
            "mean_path_length": n / 2}
