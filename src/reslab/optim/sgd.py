"""Gradient descent and momentum, as the lecture writes them.

References:
    Robbins & Monro 1951 (stochastic approximation); Polyak 1964 (heavy ball momentum);
    Nesterov 1983; Sutskever, Martens, Dahl, Hinton 2013 (momentum in deep learning).
"""

from __future__ import annotations

from torch import Tensor

from reslab.errors import ConfigError
from reslab.optim.base import FlatOptimizer, check_hyper


class SGD(FlatOptimizer):
    """Gradient descent on whatever batch it is given: the full training set gives gradient descent,
    a mini-batch gives stochastic gradient descent.

    Update, exactly as implemented (eta = ``lr``, lambda = ``weight_decay``, g = dE/dw)::

        g <- g + lambda w                  (L2 weight decay, added to the gradient; the default)
        w <- w - eta g
      or, with ``decoupled_weight_decay=True`` (Loshchilov & Hutter's decoupling):
        w <- w - eta lambda w - eta g

    With L2 decay this equals ``torch.optim.SGD(momentum=0)``.
    """

    def __init__(self, params, lr: float = 0.01, *, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 impl: str = "auto") -> None:
        defaults = {"lr": check_hyper("lr", lr, low_open=True), "weight_decay": check_hyper("weight_decay", weight_decay),
                    "decoupled_weight_decay": bool(decoupled_weight_decay)}
        super().__init__(params, defaults, impl=impl)

    def hyper(self, group):
        return {"weight_decay": group["weight_decay"], "decoupled": group["decoupled_weight_decay"]}

    @staticmethod
    def update(p: Tensor, g: Tensor, *, lr, weight_decay: float, decoupled: bool) -> None:
        if weight_decay and decoupled:
            p.mul_(1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        p.sub_(g * lr)


class Momentum(FlatOptimizer):
    """Gradient descent with momentum, in the lecture's form by default.

    The lecture's rule (``convention="lecture"``, the default), exactly as implemented::

        g    <- g + lambda w                       (L2 weight decay, if any)
        dw_t  = eta g + gamma dw_{t-1}             (dw_0 = 0; the buffer holds dw, the step itself)
        w    <- w - dw_t
      Nesterov (``nesterov=True``), the look-ahead form:
        w    <- w - (gamma dw_t + eta g)

    PyTorch's rule (``convention="pytorch"``, as ``torch.optim.SGD``)::

        v_t = mu v_{t-1} + g,    w <- w - eta v_t          (Nesterov: w <- w - eta (g + mu v_t))

    The two agree while the learning rate is constant (dw_t = eta v_t at every step). When eta changes
    they differ: the lecture's buffer remembers the steps taken at the old rate, so after a drop from
    eta to eta/10 the velocity decays over about 1/(1 - gamma) steps, while PyTorch's rescales the whole
    remembered velocity by the new rate at once.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, *, weight_decay: float = 0.0,
                 nesterov: bool = False, convention: str = "lecture", impl: str = "auto") -> None:
        if convention not in ("lecture", "pytorch"):
            raise ConfigError(f"momentum convention must be 'lecture' or 'pytorch', got {convention!r}")
        defaults = {"lr": check_hyper("lr", lr, low_open=True),
                    "momentum": check_hyper("momentum", momentum, high=1.0, high_open=True),
                    "weight_decay": check_hyper("weight_decay", weight_decay), "nesterov": bool(nesterov),
                    "convention": convention}
        super().__init__(params, defaults, impl=impl)

    def hyper(self, group):
        return {"momentum": group["momentum"], "weight_decay": group["weight_decay"], "nesterov": group["nesterov"],
                "lecture": group["convention"] == "lecture"}

    @staticmethod
    def update(p: Tensor, g: Tensor, buf: Tensor, *, lr, momentum: float, weight_decay: float,
               nesterov: bool, lecture: bool) -> None:
        if weight_decay:
            g = g + weight_decay * p
        if lecture:  # buf holds dw: dw_t = eta g + gamma dw_{t-1}
            buf.mul_(momentum).add_(g * lr)
            p.sub_(buf * momentum + g * lr if nesterov else buf)
        else:  # buf holds v: v_t = mu v_{t-1} + g
            buf.mul_(momentum).add_(g)
            p.sub_((g + momentum * buf if nesterov else buf) * lr)
