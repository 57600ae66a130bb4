"""Time of one optimizer step: reslab's default path against the fastest torch.optim path for the same rule.

Parameter sets: resnet56 (0.85M parameters in ~170 tensors) and resnet50 (25.6M in ~160 tensors), split
into reslab's two groups (weights with decay, biases and BN without). torch.optim gets ``fused=True``
where it has it (SGD, Adagrad, Adam, AdamW), otherwise the faster of its for-loop and ``foreach``.
The one-time cost of reslab's first step (flattening, and compilation on the compiled path) is
reported separately. Steps alternate between the two in blocks; figures are medians.

Usage: python benchmarks/optimizer_step.py [--models resnet56 resnet50] [--rules ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from reslab.models import create_model
from reslab.optim import create_optimizer, param_groups

RULES = {
    # name: (reslab kwargs, torch constructor candidates)
    "sgd": ({"lr": 0.1}, [lambda g: torch.optim.SGD(g, lr=0.1, fused=True)]),
    "momentum": ({"lr": 0.1, "momentum": 0.9}, [lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, fused=True)]),
    "nesterov": ({"lr": 0.1, "momentum": 0.9},
                 [lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, fused=True)]),
    "adagrad": ({"lr": 0.01}, [lambda g: torch.optim.Adagrad(g, lr=0.01, fused=True)]),
    "rmsprop": ({"lr": 0.001, "rho": 0.99, "eps": 1e-8},
                [lambda g: torch.optim.RMSprop(g, lr=0.001, foreach=True),
                 lambda g: torch.optim.RMSprop(g, lr=0.001, foreach=False)]),
    "adam": ({"lr": 0.001}, [lambda g: torch.optim.Adam(g, lr=0.001, fused=True)]),
    "adamw": ({"lr": 0.001}, [lambda g: torch.optim.AdamW(g, lr=0.001, fused=True)]),
}


def fresh_params(model_name: str, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=10)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    return param_groups(model, weight_decay=1e-4)


def time_steps(opt: torch.optim.Optimizer, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t)
    return times


def bench(model_name: str, rule: str, *, blocks: int, per_block: int) -> dict:
    hp, candidates = RULES[rule]
    ours = create_optimizer(rule, fresh_params(model_name), **hp)
    t = time.perf_counter()
    ours.step()  # flattening + compilation
    first = time.perf_counter() - t
    theirs = [make(fresh_params(model_name)) for make in candidates]
    for opt in theirs:
        opt.step()
    ours_t: list[float] = []
    theirs_t: list[list[float]] = [[] for _ in theirs]
    for _ in range(blocks):  # alternate so that drifts in machine speed hit both sides
        ours_t += time_steps(ours, per_block)
        for times, opt in zip(theirs_t, theirs):
            times += time_steps(opt, per_block)
    torch_med = min(statistics.median(t) for t in theirs_t)
    ours_med = statistics.median(ours_t)
    params = sum(p.numel() for g in ours.param_groups for p in g["params"])
    tensors = sum(len(g["params"]) for g in ours.param_groups)
    return {"model": model_name, "rule": rule, "params": params, "tensors": tensors,
            "reslab_ms": 1e3 * ours_med, "torch_ms": 1e3 * torch_med, "ratio": ours_med / torch_med,
            "reslab_path": getattr(ours, "fast_path", "?"), "first_step_s": first}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet56", "resnet50"])
    p.add_argument("--rules", nargs="+", default=list(RULES))
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args()
    rows = []
    print(f"{'model':<10} {'rule':<9} {'reslab ms':>10} {'torch ms':>10} {'ratio':>7}  path      first step (one-time)")
    for model_name in args.models:
        per_block = 20 if model_name == "resnet56" else 4
        for rule in args.rules:
            r = bench(model_name, rule, blocks=args.blocks, per_block=per_block)
            rows.append(r)
            print(f"{model_name:<10} {rule:<9} {r['reslab_ms']:>10.3f} {r['torch_ms']:>10.3f} {r['ratio']:>6.2f}x  "
                  f"{r['reslab_path']:<9} {r['first_step_s']:.1f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "torch": torch.__version__,
                                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
