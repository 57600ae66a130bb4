"""Adam and AdamW: momentum on the gradient and RMSProp's scaling, with bias correction.

References:
    Kingma & Ba 2015, Adam: A Method for Stochastic Optimization.
    Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization (AdamW).
"""

from __future__ import annotations

from torch import Tensor

from reslab.optim.base import FlatOptimizer, check_hyper


class Adam(FlatOptimizer):
    """Adam, exactly as implemented (b1, b2 = ``betas``; t counts steps from 1)::

        g   <- g + lambda w                          (L2 weight decay, if any; AdamW decouples it)
        m_t  = b1 m_{t-1} + (1 - b1) g
        v_t  = b2 v_{t-1} + (1 - b2) g^2
        w   <- w - eta (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)

    This equals ``torch.optim.Adam``. ``bias_correction=False, eps_inside=True`` gives the lecture
    slide's form instead::

        v_t = b1 v_{t-1} + (1 - b1) g,   s_t = b2 s_{t-1} + (1 - b2) g^2,   dw = -eta v_t / sqrt(s_t + eps)

    The slide multiplies that step by a further g_t; that factor is a typo of the notes (it would make
    the step scale with g^2 and break Adam's invariance to the gradient's scale) and is not implemented.
    """

    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), *, eps: float = 1e-8,
                 weight_decay: float = 0.0, bias_correction: bool = True, eps_inside: bool = False,
                 impl: str = "auto") -> None:
        b1, b2 = betas
        defaults = {"lr": check_hyper("lr", lr, low_open=True),
                    "betas": (check_hyper("beta1", b1, high=1.0, high_open=True),
                              check_hyper("beta2", b2, high=1.0, high_open=True)),
                    "eps": check_hyper("eps", eps), "weight_decay": check_hyper("weight_decay", weight_decay),
                    "bias_correction": bool(bias_correction), "eps_inside": bool(eps_inside)}
        super().__init__(params, defaults, impl=impl)

    def hyper(self, group):
        return {"beta1": group["betas"][0], "beta2": group["betas"][1], "eps": group["eps"],
                "weight_decay": group["weight_decay"], "decoupled": self.decoupled, "eps_inside": group["eps_inside"]}

    def scalars(self, group, step):
        """eta / (1 - b1^t) and sqrt(1 - b2^t), in double precision (1 and 1 without bias correction)."""
        lr = float(group["lr"])
        if not group["bias_correction"]:
            return {"lr": lr, "step_size": lr, "c2_sqrt": 1.0}
        b1, b2 = group["betas"]
        return {"lr": lr, "step_size": lr / (1 - b1 ** step), "c2_sqrt": (1 - b2 ** step) ** 0.5}

    @staticmethod
    def update(p: Tensor, g: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, *, lr, step_size, c2_sqrt, beta1: float,
               beta2: float, eps: float, weight_decay: float, decoupled: bool, eps_inside: bool) -> None:
        if weight_decay and decoupled:
            p.mul_(1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (exp_avg_sq / (c2_sqrt * c2_sqrt) + eps).sqrt() if eps_inside else exp_avg_sq.sqrt() / c2_sqrt + eps
        p.sub_(exp_avg / denom * step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w <- w - eta lambda w`` before the Adam step (as ``torch.optim.AdamW``,
    whose default lambda is 0.01)."""

    decoupled = True

    def __init__(self, params, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), *, eps: float = 1e-8,
                 weight_decay: float = 0.01, **options) -> None:
        super().__init__(params, lr, betas, eps=eps, weight_decay=weight_decay, **options)
