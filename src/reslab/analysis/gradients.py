"""Gradient flow: the norm of the gradient at every layer, from the output back to the input.

For one batch, the loss is back-propagated once and, for every convolution and linear layer in forward
order, two norms are recorded: the gradient of the loss with respect to the layer's weights, and with
respect to the layer's output (the "activation gradient" that flows on to earlier layers). The forward
signal's norm is recorded beside them. In a deep plain network without BatchNorm these shrink or grow
geometrically with depth; the identity path of a residual network, dL/dx = dL/dH (dF/dx + 1), keeps them
of the same order.

References:
    He et al. 2016 (section 4.1 argues BN keeps plain-net gradients healthy);
    Glorot & Bengio 2010; He et al. 2015 (initialisation and vanishing/exploding signals).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from reslab.models import model_info

VANISH, EXPLODE = 0.1, 10.0  # first/last gradient ratios outside this band count as vanishing / exploding


@dataclass
class LayerGrad:
    index: int  # depth of the layer, 1 = nearest the input
    name: str
    weight_grad_norm: float
    output_grad_norm: float  # || dL / d(output of the layer) ||, per sample
    output_norm: float  # || output || per sample (the forward signal)


@dataclass
class GradientFlow:
    layers: list[LayerGrad] = field(default_factory=list)
    loss: float = 0.0

    def column(self, key: str) -> list[float]:
        return [getattr(l, key) for l in self.layers]

    def ratio_first_last(self, key: str = "weight_grad_norm") -> float:
        """Gradient norm at the first layer over that at the last: < 1 vanishing, > 1 exploding toward the input."""
        values = self.column(key)
        return values[0] / values[-1] if values and values[-1] > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"loss": self.loss, "ratio_first_last_weight": self.ratio_first_last("weight_grad_norm"),
                "ratio_first_last_output": self.ratio_first_last("output_grad_norm"),
                "layers": [l.__dict__ for l in self.layers]}


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolutions and linear layers in the order the forward pass uses them (found by a dry run)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gradient_flow(model: nn.Module, x: Tensor, y: Tensor, *, loss_fn=nn.functional.cross_entropy) -> GradientFlow:
    """Back-propagate ``loss_fn(model(x), y)`` once and record every layer's gradient norms.

    The model's mode (train/eval) is left as given; parameters' ``.grad`` are restored afterwards.
    Projection shortcuts are layers too; they are reported with their names. A network with auxiliary
    classifiers (GoogLeNet, in training mode) is measured under the loss it trains with: ``loss_fn`` of the main
    logits plus ``aux_weight`` times that of each auxiliary head. The heads are how it feeds gradient to its
    middle layers; on the main loss alone their layers would get none.
    """
    order: list[tuple[str, nn.Module, Tensor]] = []
    names = {m: n for n, m in weighted_layers(model)}

    def keep(module, inputs, output):
        if module in names:
            output.retain_grad()
            order.append((names[module], module, output))

    hooks = [m.register_forward_hook(keep) for m in names]
    saved = {p: p.grad for p in model.parameters()}
    try:
        for p in model.parameters():
            p.grad = None
        out = model(x)
        logits = out.logits if hasattr(out, "aux_logits") else out
        loss = loss_fn(logits, y)
        for aux in getattr(out, "aux_logits", ()):
            loss = loss + out.aux_weight * loss_fn(aux, y)
        loss.backward()
        n = x.shape[0]
        flow = GradientFlow(loss=float(loss.detach()))
        seen = set()
        for i, (name, module, output) in enumerate(order, start=1):
            if module in seen:  # a layer used twice (weight sharing) is reported at its first use
                continue
            seen.add(module)
            w = module.weight.grad
            flow.layers.append(LayerGrad(
                index=len(flow.layers) + 1, name=name,
                weight_grad_norm=float(w.norm()) if w is not None else 0.0,
                output_grad_norm=float(output.grad.norm() / n ** 0.5) if output.grad is not None else 0.0,
                output_norm=float(output.detach().norm() / n ** 0.5)))
        return flow
    finally:
        for h in hooks:
            h.remove()
        for p, g in saved.items():
            p.grad = g


def flow_over(model: nn.Module, batches, *, loss_fn=nn.functional.cross_entropy) -> dict:
    """:func:`gradient_flow` on each of several batches, as :meth:`GradientFlow.as_dict` writes one: every
    layer's norms and both first/last ratios are medians over the batches, the loss their mean, and each
    batch's weight-gradient ratio is kept (``ratio_draws_weight``) so that the spread can be read. One
    batch's ratio moves by a factor of ten between batches for a barely trained deep plain network: a
    median over several is what a verdict against fixed edges can stand on."""
    flows = [gradient_flow(model, x, y, loss_fn=loss_fn) for x, y in batches]
    if not flows:
        raise ValueError("flow_over needs at least one batch")
    layers = [{**first.__dict__, **{key: statistics.median(getattr(f.layers[i], key) for f in flows)
                                    for key in ("weight_grad_norm", "output_grad_norm", "output_norm")}}
              for i, first in enumerate(flows[0].layers)]
    return {"loss": statistics.fmean(f.loss for f in flows),
            "ratio_first_last_weight": statistics.median(f.ratio_first_last("weight_grad_norm") for f in flows),
            "ratio_first_last_output": statistics.median(f.ratio_first_last("output_grad_norm") for f in flows),
            "ratio_draws_weight": [f.ratio_first_last("weight_grad_norm") for f in flows],
            "layers": layers}


class MLP(nn.Module):
    """A deep fully connected network, plain or residual, for the activation and initialisation study.

    Residual form: h <- h + act(W h); plain form: h <- act(W h).
    """

    def __init__(self, *, depth: int = 30, width: int = 64, in_features: int = 32 * 32 * 3, num_classes: int = 10,
                 activation: str = "relu", residual: bool = False, init: str = "he") -> None:
        super().__init__()
        acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {', '.join(acts)}")
        self.residual = residual
        self.act = acts[activation]()
        self.inp = nn.Linear(in_features, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear(m.weight, init, activation)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x.flatten(1)))
        for layer in self.hidden:
            h = h + self.act(layer(h)) if self.residual else self.act(layer(h))
        return self.out(h)


def init_linear(weight: Tensor, init: str, activation: str) -> None:
    """``he`` (Kaiming normal, fan-in), ``xavier`` (Glorot normal) or ``small`` (N(0, 0.01^2))."""
    if init == "he":
        nn.init.kaiming_normal_(weight, nonlinearity="relu" if activation == "relu" else "linear")
    elif init == "xavier":
        nn.init.xavier_normal_(weight, gain=nn.init.calculate_gain(activation if activation != "relu" else "relu"))
    elif init == "small":
        nn.init.normal_(weight, 0.0, 0.01)
    else:
        raise ValueError(f"init must be he, xavier or small, got {init!r}")


# -- the verdict in words ---------------------------------------------------------------------------------
def classify_ratio(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "undefined"
    if ratio < VANISH:
        return "vanishing toward the input"
    if ratio > EXPLODE:
        return "exploding toward the input"
    return "healthy (within a factor of 10 from last to first layer)"


def labelled(flow: GradientFlow | dict, model: str, when: str) -> dict:
    """A flow as stored in ``gradients.json`` (a :class:`GradientFlow` or :func:`flow_over`'s summary): with
    the network's name and ``when`` ("init" or "trained")."""
    return {**(flow.as_dict() if isinstance(flow, GradientFlow) else flow), "model": model, "when": when}


def two_digits(x: float) -> str:
    """Two significant digits, written out where ``.2g`` would switch to an exponent: 104 reads "100", not "1e+02"."""
    return f"{float(f'{x:.2g}'):g}"


def gradient_verdict(flows: dict[str, dict]) -> str:
    """One paragraph: every network's first/last-layer weight-gradient ratio, and which reading of
    degradation they support. Each flow says its ``model`` and ``when`` (at initialisation or trained);
    a gradient problem that is gone after training while the deep plain network still trains worse
    cannot be what holds it back."""
    parts, draws = [], max((len(f.get("ratio_draws_weight", ())) for f in flows.values()), default=0)
    for label, flow in flows.items():
        r = flow["ratio_first_last_weight"]
        healthy = VANISH <= r <= EXPLODE
        spread = flow.get("ratio_draws_weight", ())
        span = f" [{two_digits(min(spread))}-{two_digits(max(spread))}]" if len(spread) > 1 else ""
        parts.append(f"{label} {r:.3g}" + span + ("" if healthy else f" ({classify_ratio(r)})"))
    over = f"median over {draws} held-out batches, [range]; " if draws > 1 else ""
    text = (f"First/last layer gradient ratio ({over}healthy within {VANISH:g}-{EXPLODE:g}): "
            + ", ".join(parts) + ".")
    plain = {label: f["ratio_first_last_weight"] for label, f in flows.items()
             if "model" in f and not model_info(f["model"]).residual and model_info(f["model"]).twin}
    if not plain:
        return text
    bad = {label: r for label, r in plain.items() if not VANISH <= r <= EXPLODE}
    trained = [label for label in plain if flows[label].get("when") == "trained"]
    if not bad:
        return text + (" The plain networks' gradients neither vanish nor explode: with BatchNorm, the measurements "
                       "support He et al.'s reading that degradation is an optimisation difficulty, not vanishing "
                       "gradients.")
    if trained and not any(label in bad for label in trained):
        worst = max(bad, key=lambda label: abs(math.log10(bad[label])) if bad[label] > 0 else math.inf)
        return text + (f" The plain networks' gradient problem is there at initialisation only ({worst}: "
                       f"{classify_ratio(bad[worst])}) and gone after training, while the deep plain network "
                       "still trains worse: on the degradation itself, the measurements support He et al.'s "
                       "reading (an optimisation difficulty) over the notes' (vanishing gradients); unhealthy "
                       "gradients are a problem of the start of training only.")
    return text + (" Some plain network's gradients vanish or explode after training too: these measurements "
                   "support the notes' reading that vanishing/exploding gradients are at play.")
