"""Layer responses (He et al. 2016, Figure 7): the standard deviation of each 3x3 layer's output.

A response is taken after BatchNorm and before the ReLU or the addition, over a batch, per channel,
then averaged over channels. Residual functions, if they are close to zero as the paper argues, have
smaller responses than the layers of a plain network; the deeper the network, the smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reslab.models import model_info


@dataclass
class Response:
    index: int  # order of the 3x3 layer in the forward pass, from 1
    name: str  # the module whose output is measured (BN after the conv, or the conv without BN)
    std: float


@torch.no_grad()
def response_points(model: nn.Module, x: Tensor) -> list[tuple[str, nn.Module]]:
    """The module whose output is each 3x3 layer's response, in forward order: the BatchNorm that runs
    right after the convolution, or the convolution itself where no BatchNorm follows (``norm="none"``).
    Found by one forward pass, so registration order does not matter."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))}
    calls: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append(m)) for m in names]
    was_training = model.training
    model.eval()
    try:
        model(x[:1])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    points, seen = [], set()
    for i, m in enumerate(calls):
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m not in seen:
            seen.add(m)
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            if isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == m.out_channels:
                points.append((names[nxt], nxt))
            else:
                points.append((names[m], m))
    return points


@torch.no_grad()
def layer_responses(model: nn.Module, x: Tensor) -> list[Response]:
    """One forward pass in eval mode; the std (per channel over batch and space, then averaged) of every
    3x3 layer's output, in forward order."""
    points = response_points(model, x)
    names = {m: n for n, m in points}
    recorded: list[tuple[str, Tensor]] = []
    seen: set[nn.Module] = set()

    def keep(module, inputs, output):
        if module not in seen:
            seen.add(module)
            recorded.append((names[module], output.float().transpose(0, 1).flatten(1).std(dim=1).mean()))

    hooks = [m.register_forward_hook(keep) for m in names]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [Response(i, n, float(s)) for i, (n, s) in enumerate(recorded, start=1)]


def responses_verdict(responses: dict[str, list[dict]]) -> str:
    """Each network's mean response, each residual network against its plain twin, and whether every
    residual network responds more weakly than every plain one (He et al. Figure 7)."""
    means = {k: sum(r["std"] for r in v) / len(v) for k, v in responses.items() if v}
    text = "; ".join(f"{k}: mean response std {m:.3g}" for k, m in means.items()) + "."
    res = {k: m for k, m in means.items() if model_info(k).residual}
    plain = {k: m for k, m in means.items() if not model_info(k).residual and model_info(k).twin}
    if plain and res:
        twins = [(p, model_info(p).twin) for p in plain if model_info(p).twin in res]
        text += "".join(f" {r}'s mean response is {abs(100 * (1 - means[r] / means[p])):.0f}% "
                        f"{'below' if means[r] < means[p] else 'above'} {p}'s." for p, r in twins)
        smaller = max(res.values()) < min(plain.values())
        text += (" Every residual network responds more weakly than every plain one, as in He et al. Figure 7: "
                 "the residual functions lie closer to zero than the plain layers' mappings." if smaller else
                 " The residual layers' responses are not uniformly smaller than the plain ones here.")
    return text
