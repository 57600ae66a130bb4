"""Per-parameter learning rates: AdaGrad and RMSProp.

References:
    Duchi, Hazan, Singer 2011 (AdaGrad). Tieleman & Hinton 2012, Lecture 6.5 (RMSProp).
"""

from __future__ import annotations

from torch import Tensor

from reslab.optim.base import FlatOptimizer, check_hyper


class Adagrad(FlatOptimizer):
    """Each parameter's rate shrinks with the squared gradients it has seen: parameters that are
    rarely updated (sparse features) keep large steps.

    Update, exactly as implemented (equal to ``torch.optim.Adagrad`` with lr_decay=0 and a zero
    initial accumulator)::

        g <- g + lambda w                 (L2 weight decay, if any)
        G <- G + g^2                      (elementwise, G_0 = 0)
        w <- w - eta g / (sqrt(G) + eps)
    """

    state_names = ("sum",)

    def __init__(self, params, lr: float = 0.01, *, eps: float = 1e-10, weight_decay: float = 0.0,
                 impl: str = "auto") -> None:
        defaults = {"lr": check_hyper("lr", lr, low_open=True), "eps": check_hyper("eps", eps),
                    "weight_decay": check_hyper("weight_decay", weight_decay)}
        super().__init__(params, defaults, impl=impl)

    def hyper(self, group):
        return {"eps": group["eps"], "weight_decay": group["weight_decay"]}

    @staticmethod
    def update(p: Tensor, g: Tensor, total: Tensor, *, lr, eps: float, weight_decay: float) -> None:
        if weight_decay:
            g = g + weight_decay * p
        total.addcmul_(g, g)
        p.sub_(g / (total.sqrt() + eps) * lr)


class RMSprop(FlatOptimizer):
    """A moving average of squared gradients divides the step: AdaGrad that forgets.

    Update, exactly as implemented (rho = ``rho``)::

        g   <- g + lambda w                           (L2 weight decay, if any)
        v_t  = rho v_{t-1} + (1 - rho) g^2            (v_0 = 0)
        d    = sqrt(v_t + eps)                        (``eps_inside=True``, the lecture's, the default)
        d    = sqrt(v_t) + eps                        (``eps_inside=False``, PyTorch's)
        w   <- w - eta g / d
      with ``momentum`` mu > 0 (as PyTorch):
        b_t  = mu b_{t-1} + g / d,   w <- w - eta b_t

    With ``eps_inside=False`` this equals ``torch.optim.RMSprop(alpha=rho, centered=False)``.
    """

    def __init__(self, params, lr: float = 0.001, *, rho: float = 0.9, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0, eps_inside: bool = True, impl: str = "auto") -> None:
        defaults = {"lr": check_hyper("lr", lr, low_open=True), "rho": check_hyper("rho", rho, high=1.0, high_open=True),
                    "eps": check_hyper("eps", eps), "momentum": check_hyper("momentum", momentum, high=1.0, high_open=True),
                    "weight_decay": check_hyper("weight_decay", weight_decay), "eps_inside": bool(eps_inside)}
        super().__init__(params, defaults, impl=impl)

    def active_states(self, group):
        return ("square_avg", "momentum_buffer") if group["momentum"] > 0 else ("square_avg",)

    def hyper(self, group):
        return {"rho": group["rho"], "eps": group["eps"], "momentum": group["momentum"],
                "weight_decay": group["weight_decay"], "eps_inside": group["eps_inside"]}

    @staticmethod
    def update(p: Tensor, g: Tensor, square_avg: Tensor, *buf: Tensor, lr, rho: float, eps: float,
               momentum: float, weight_decay: float, eps_inside: bool) -> None:
        if weight_decay:
            g = g + weight_decay * p
        square_avg.mul_(rho).addcmul_(g, g, value=1 - rho)
        denom = (square_avg + eps).sqrt() if eps_inside else square_avg.sqrt() + eps
        if momentum > 0:
            buf[0].mul_(momentum).add_(g / denom)
            p.sub_(buf[0] * lr)
        else:
            p.sub_(g / denom * lr)
