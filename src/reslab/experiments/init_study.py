"""Activation and initialisation in deep MLPs: the gradient per layer, plain against residual.

For each activation (sigmoid, ReLU) and initialisation (He, Xavier, small), a deep MLP with and
without identity shortcuts is built and one batch back-propagated: the lecture's vanishing and
exploding gradients, and what dL/dx = dL/dH (dF/dx + 1) does to them. Trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reslab.analysis.gradients import MLP, classify_ratio, gradient_flow
from reslab.config import DataConfig, RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import finish
from reslab.rundir import ExperimentDir
from reslab.workflows.restore import analysis_batch

ACTIVATIONS = ("sigmoid", "relu", "tanh")
INITS = ("he", "xavier", "small")


@dataclass(frozen=True)
class InitStudyOptions:
    depth: int = 30  # hidden layers
    width: int = 64
    batch: int = 128  # images of the embedded sample
    activations: tuple[str, ...] = ("sigmoid", "relu")
    inits: tuple[str, ...] = INITS

    def check(self) -> None:
        if self.depth < 1 or self.width < 1 or self.batch < 1:
            raise ConfigError("experiment.depth, width and batch must be positive")
        for a in self.activations:
            if a not in ACTIVATIONS:
                raise ConfigError(f"experiment.activations: unknown activation {a!r}; known: {', '.join(ACTIVATIONS)}")
        for i in self.inits:
            if i not in INITS:
                raise ConfigError(f"experiment.inits: unknown initialisation {i!r}; known: {', '.join(INITS)}")


def init_study(options: InitStudyOptions, data_cfg: DataConfig) -> dict:
    x, y, data = analysis_batch(data_cfg, n=options.batch)
    cells = []
    for act in options.activations:
        for init in options.inits:
            flows = {}
            for residual in (False, True):
                torch.manual_seed(0)
                model = MLP(depth=options.depth, width=options.width, in_features=x[0].numel(),
                            num_classes=data.num_classes, activation=act, residual=residual, init=init)
                flows["residual" if residual else "plain"] = gradient_flow(model, x, y).as_dict()
            cells.append({"activation": act, "init": init, "flows": flows})
    lines = []
    for c in cells:
        p, r = c["flows"]["plain"]["ratio_first_last_weight"], c["flows"]["residual"]["ratio_first_last_weight"]
        lines.append(f"{c['activation']}/{c['init']}: plain {p:.2g} ({classify_ratio(p).split(' (')[0]}), "
                     f"residual {r:.2g} ({classify_ratio(r).split(' (')[0]})")
    return {"depth": options.depth, "width": options.width, "activations": list(options.activations),
            "inits": list(options.inits), "cells": cells,
            "verdict": "First/last layer gradient ratios: " + "; ".join(lines) + "."}


@register("init-study", InitStudyOptions, needs_recipe=False,
          summary="deep MLPs, sigmoid/ReLU x He/Xavier/small init, plain versus residual (trains nothing)")
def run_init_study(base: RunConfig, options: InitStudyOptions, folder: ExperimentDir, ctx: Context) -> dict:
    data_cfg = DataConfig(dataset="sample", val_size=500, cache_dir=base.data.cache_dir)
    result = init_study(options, data_cfg)
    folder.write_analysis("init_study", result)
    return finish(folder, {"title": f"Activation and initialisation: {options.depth}-layer MLPs",
                           "kind": "init-study", "runs": [], "table": [], "verdict": [result["verdict"]],
                           "description": "One batch of the embedded CIFAR-10 sample through deep MLPs, "
                                          "plain and residual, for each activation and initialisation."})
