"""What every reslab optimizer shares: validation, lazy state, and three ways to run one update rule.

Each optimizer defines its rule once, as a pure function ``update(p, g, *states, lr, ..., **hyper)``
that mutates ``p`` and its state tensors in place; ``scalars(group, step)`` computes, in double precision
and outside the update, the per-step numbers it needs (the rate; Adam's bias-corrected step size).
Three paths run it:

- ``"reference"``: parameter by parameter, on the tensors as they are: the formula, readable.
- ``"flat"``: every parameter, gradient and state of a group becomes a view into one flat buffer, and the
  rule runs once over the whole buffer (a handful of large vector operations instead of thousands of
  small ones).
- ``"compiled"``: the flat path with the rule compiled by ``torch.compile`` into one fused loop; the
  per-step scalars are 0-d tensors of the parameters' dtype, so a changing rate never recompiles and
  the loop runs in the parameters' precision. ``"auto"`` (the default) takes it,
  and falls back to ``"flat"`` where compilation is unavailable, or quietly where the user switched
  torch.compile off (``TORCH_COMPILE_DISABLE=1``).

A parameter that received no gradient in a step: the reference path skips it (as ``torch.optim`` does);
the flat paths see a zero gradient, so momentum and weight decay still act on it, as in the Torch7
optimizers over flattened parameters with which the ResNet and stochastic-depth papers were trained.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from reslab.errors import ConfigError

IMPLS = ("auto", "compiled", "flat", "reference")


def check_hyper(name: str, value: float, *, low: float = 0.0, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """Raise a ConfigError naming the hyperparameter when ``value`` lies outside its range."""
    value = float(value)
    ok = value > low if low_open else value >= low
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok or value != value:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"invalid {name}: {value} (must lie in {lo}{low}, {high if high is not None else 'inf'}{hi})")
    return value


@dataclass
class FlatGroup:
    """One parameter group laid out as flat buffers; the parameters, grads and states are views of them."""

    params: list[Tensor]
    param: Tensor
    grad: Tensor
    states: dict[str, Tensor]
    grad_views: list[Tensor]
    step: Tensor  # 0-d float64, shared by every parameter of the group
    scalars: dict[str, Tensor]  # the per-step scalars, 0-d tensors of the parameters' dtype
    ptrs: list[int] = field(default_factory=list)


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last))


def _view(flat: Tensor, like: Tensor, offset: int) -> Tensor:
    return torch.as_strided(flat, like.size(), like.stride(), offset)


class FlatOptimizer(torch.optim.Optimizer):
    """Base of reslab's optimizers. Subclasses set ``state_names`` and implement ``update`` and ``hyper``."""

    state_names: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict[str, Any], *, impl: str = "auto") -> None:
        if impl not in IMPLS:
            raise ConfigError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        super().__init__(params, defaults)
        self.impl = impl
        self._flat: dict[int, FlatGroup] = {}
        self._compiled: Callable | None = None
        # what actually runs: "auto" means the compiled flat path, falling back to the eager one
        off = os.environ.get("TORCH_COMPILE_DISABLE") == "1"  # as torch reads it
        self.fast_path = ("flat" if off else "compiled") if impl == "auto" else impl

    # -- to be provided by each optimizer ------------------------------------------------------------
    @staticmethod
    def update(p: Tensor, g: Tensor, *states: Tensor, lr, **scalars_and_hyper) -> None:
        raise NotImplementedError

    def scalars(self, group: dict[str, Any], step: float) -> dict[str, float]:
        """Per-step numbers computed in double precision outside ``update`` (step counts from 1)."""
        return {"lr": float(group["lr"])}

    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The constant hyperparameters passed to ``update`` (Python numbers and flags)."""
        raise NotImplementedError

    def active_states(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.state_names

    # -- torch.optim interface -----------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients; in the flat layout the buffer is zeroed and the views stay attached."""
        for i, group in enumerate(self.param_groups):
            flat = self._flat.get(i)
            if flat is not None:
                flat.grad.zero_()
                continue
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().zero_()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._flat.clear()  # rebuilt from the loaded per-parameter state at the next step

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # Views would drag their whole flat buffer into every saved tensor: save compact copies.
        state["state"] = {k: {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in s.items()}
                          for k, s in state["state"].items()}
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            if self.impl == "reference" or not self._flattenable(group):
                self._step_reference(group)
            else:
                self._step_flat(i, group)
        return loss

    # -- reference path ------------------------------------------------------------------------------
    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float64)
        for name in self.active_states(group):
            if name not in state:
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _step_reference(self, group: dict[str, Any]) -> None:
        hyper = self.hyper(group)
        names = self.active_states(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self._init_state(p, group)
            state["step"] += 1
            self.update(p, p.grad, *(state[n] for n in names), **self.scalars(group, state["step"].item()), **hyper)

    # -- flat paths ----------------------------------------------------------------------------------
    def _flattenable(self, group: dict[str, Any]) -> bool:
        params = group["params"]
        if not params:
            return False
        dtype, device = params[0].dtype, params[0].device
        return all(p.dtype == dtype and p.device == device and _dense(p) and p.is_floating_point()
                   and not (p.grad is not None and p.grad.is_sparse) for p in params)

    def _build_flat(self, group: dict[str, Any]) -> FlatGroup:
        params = list(group["params"])
        total = sum(p.numel() for p in params)
        like = params[0]
        flat_p = torch.empty(total, dtype=like.dtype, device=like.device)
        flat_g = torch.zeros(total, dtype=like.dtype, device=like.device)
        names = self.active_states(group)
        flat_s = {n: torch.zeros(total, dtype=like.dtype, device=like.device) for n in names}
        step_value = 0.0
        grad_views, offset = [], 0
        for p in params:
            n = p.numel()
            view = _view(flat_p, p, offset)
            view.copy_(p)
            p.data = view
            gview = _view(flat_g, p, offset)
            if p.grad is not None:
                gview.copy_(p.grad)
            p.grad = gview
            grad_views.append(gview)
            state = self.state[p]
            if "step" in state:
                step_value = float(state["step"])
            for name in names:
                sview = _view(flat_s[name], p, offset)
                if name in state:
                    sview.copy_(state[name])
                state[name] = sview
            offset += n
        step = torch.tensor(step_value, dtype=torch.float64, device=like.device)
        for p in params:
            self.state[p]["step"] = step
        scalars = {k: torch.tensor(v, dtype=like.dtype, device=like.device)
                   for k, v in self.scalars(group, step_value + 1).items()}
        return FlatGroup(params, flat_p, flat_g, flat_s, grad_views, step, scalars, [p.data_ptr() for p in params])

    def _flat_group(self, i: int, group: dict[str, Any]) -> FlatGroup:
        flat = self._flat.get(i)
        params = group["params"]
        if (flat is None or len(flat.params) != len(params)
                or any(a is not b for a, b in zip(flat.params, params))
                or any(p.data_ptr() != ptr for p, ptr in zip(params, flat.ptrs))):
            flat = self._flat[i] = self._build_flat(group)
            return flat
        for j, (p, gview) in enumerate(zip(params, flat.grad_views)):
            if p.grad is not gview:  # someone replaced or cleared the gradient: take it back into the buffer
                if p.grad is None:
                    gview.zero_()
                else:
                    gview.copy_(p.grad)
                p.grad = gview
        return flat

    def _step_flat(self, i: int, group: dict[str, Any]) -> None:
        flat = self._flat_group(i, group)
        flat.step += 1
        names = self.active_states(group)
        args = (flat.param, flat.grad, *(flat.states[n] for n in names))
        hyper = self.hyper(group)
        values = self.scalars(group, float(flat.step))
        if self.fast_path == "compiled":
            if self._compiled is None:
                self._compiled = torch.compile(type(self).update, fullgraph=True, dynamic=True)
            for k, v in values.items():
                flat.scalars[k].fill_(v)
            try:
                self._compiled(*args, **flat.scalars, **hyper)
                return
            except Exception as e:  # no compiler here: the eager flat path computes the same rule
                if self.impl == "compiled":
                    raise
                warnings.warn(f"torch.compile is unavailable for the optimizer step ({type(e).__name__}); "
                              f"using the eager flat path")
                self.fast_path = "flat"
        type(self).update(*args, **values, **hyper)
