"""He et al. 2016, Table 6: CIFAR-10 error against depth for residual networks (and their plain twins)."""

from __future__ import annotations

from dataclasses import dataclass

from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.beside import finished_runs
from reslab.experiments.common import check_analysis
from reslab.experiments.degradation import run_twins
from reslab.models import list_models
from reslab.rundir import ExperimentDir


@dataclass(frozen=True)
class DepthOptions:
    depths: tuple[int, ...] = (20, 32, 44, 56)
    plain: bool = False  # train the plain twins too
    analysis_batch: int = 0  # held-out images a batch of the analyses; 0: the training batch
    analysis_draws: int = 5  # held-out batches the gradient ratios are the median over
    beside: str = ""  # a folder of another record's runs of these networks (e.g. in another precision) to set beside

    def models(self) -> tuple[str, ...]:
        families = ("plain", "resnet") if self.plain else ("resnet",)
        return tuple(f"{family}{d}" for family in families for d in self.depths)

    def check(self) -> None:
        check_analysis(self.analysis_batch, self.analysis_draws)
        for name in self.models():
            if name not in list_models():
                raise ConfigError(f"experiment.depths: no CIFAR network {name!r} (depths are 6n+2: 20, 32, 44, "
                                  f"56, 110{', 1202 without --experiment.plain' if self.plain else ', 1202'})")
        if self.beside:
            finished_runs(self.beside)  # a wrong folder is said now, not after hours of training


@register("depth", DepthOptions, recipe="configs/cifar10_degradation.toml",
          summary="He et al. Table 6, with the paper's errors beside ours")
def run_depth(base: RunConfig, options: DepthOptions, folder: ExperimentDir, ctx: Context) -> dict:
    return run_twins(base, options.models(), folder, ctx, kind="depth",
                     title="Depth: error against depth (He et al. Table 6)", analysis_batch=options.analysis_batch,
                     analysis_draws=options.analysis_draws, beside=options.beside)
