"""Why reslab's paper recipe lands off He et al.'s numbers: one base recipe, arms that each change one
thing, several seeds per arm.

The base is the config given (``configs/cifar10_ablation.toml``: the paper recipe compressed in time).
Each arm applies its overrides to it; every (arm, seed) pair is one run, ``<arm>-s<seed>``, trained with
``train.seed = seed`` on the same held-out split. The table gives each arm's mean and sample standard
deviation of the final validation (and training) error over its seeds; an arm's effect is its mean
minus the base's, with the standard error sqrt(s_a^2/n_a + s_b^2/n_b). With n seeds an arm and a
seed-to-seed spread s, the smallest effect the design detects (two-sided 5%, 80% power) is about
2.8 x s x sqrt(2/n): the table states it per arm.

JPEG arms re-encode the shared JPEG-75 copy at lower quality. That compresses twice, so it bounds the
JPEG effect instead of measuring it. :func:`jpeg_cost` puts a number on it: JPEG quantises the DCT
coefficients with libjpeg's standard tables scaled by s(q) = 5000/q (q < 50) or 200 - 2q (q >= 50) per
cent, so its noise power grows as s(q)^2; the error is fitted as a line in that noise power (weighted by
each arm's standard error) and read at zero, the lossless images. Re-encoding a JPEG-75 image at a
coarser step either absorbs the first rounding (noise power s(q)^2, the steeper line, hence the upper
bound) or adds to it (0.25 + s(q)^2, the lower): the JPEG-75 copy's cost is reported as that interval.
:func:`size_gain` reads the 40k arm the same way: error linear in the log of the training-set size (the
local form of a learning curve), extrapolated from 45k to 50k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from reslab.config import RunConfig, apply_overrides, as_dict, config_from_dict
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import finish, run_figures
from reslab.rundir import ExperimentDir
from reslab.workflows.sweep import train_configs

# name: (what differs from the base, overrides)
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "base": ("the paper recipe as reslab runs it (fp32, as He et al.; no decay on BatchNorm/bias; per-channel "
             "mean/std; BatchNorm over the 128-image batch; 45k images; the JPEG-75 copy)", ()),
    "bf16": ("bf16 autocast instead of fp32 (what reslab's auto precision picks where the CPU has bf16 "
             "instructions)", ('--train.precision="bf16"',)),
    "decay-bn": ("weight decay on BatchNorm and bias parameters too", ("--optim.decay_norm_and_bias=true",)),
    "pixel-mean": ("He et al.'s per-pixel mean subtraction", ('--data.normalize="pixel"',)),
    "ghost-bn-64": ("BatchNorm statistics over 64 images (the batch in two halves, gradients summed: He et "
                    "al.'s two GPUs)", ("--train.accumulate=2",)),
    "train-40k": ("40,000 training images instead of 45,000", ("--data.limit=40000",)),
    "jpeg-50": ("every image re-encoded at JPEG quality 50", ("--data.jpeg_quality=50",)),
    "jpeg-30": ("every image re-encoded at JPEG quality 30", ("--data.jpeg_quality=30",)),
    "combined": ("decay on BatchNorm/bias, per-pixel mean and 64-image BatchNorm together",
                 ("--optim.decay_norm_and_bias=true", '--data.normalize="pixel"', "--train.accumulate=2")),
}
JPEG_ARMS = {"base": 75, "jpeg-50": 50, "jpeg-30": 30}  # the shared copy is JPEG quality 75


@dataclass(frozen=True)
class AblationOptions:
    arms: tuple[str, ...] = tuple(ARMS)
    seeds: int = 3

    def check(self) -> None:
        for arm in self.arms:
            if arm not in ARMS:
                raise ConfigError(f"unknown ablation arm {arm!r}; known: {', '.join(ARMS)}")
        if "base" not in self.arms:
            raise ConfigError("the ablation needs its base arm: every effect is measured against it")
        if self.seeds < 2:
            raise ConfigError(f"experiment.seeds must be at least 2 (a spread needs two runs), got {self.seeds}")


def arm_config(base: RunConfig, arm: str, seed: int, root: str) -> RunConfig:
    cfg = config_from_dict(apply_overrides(as_dict(replace(base, experiment={})), ARMS[arm][1]))
    return replace(cfg, name=f"{arm}-s{seed}", out_dir=root, train=replace(cfg.train, seed=seed))


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def summarise(errors: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Per arm: mean and spread of final errors (%), the effect against the base with its standard
    error, and the smallest effect this number of seeds would detect."""
    base_m, base_s = mean_sd(errors["base"]["val"])
    n_base = len(errors["base"]["val"])
    table = []
    for arm, e in errors.items():
        m, s = mean_sd(e["val"])
        tm, ts = mean_sd(e["train"])
        se = math.sqrt(s ** 2 / len(e["val"]) + base_s ** 2 / n_base)
        pooled = math.sqrt((s ** 2 + base_s ** 2) / 2)
        table.append({"arm": arm, "seeds": len(e["val"]), "val error %": round(m, 2), "val sd": round(s, 2),
                      "train error %": round(tm, 2), "train sd": round(ts, 2),
                      "effect on val error": None if arm == "base" else round(m - base_m, 2),
                      "effect se": None if arm == "base" else round(se, 2),
                      "smallest detectable": round(2.8 * pooled * math.sqrt(2 / len(e["val"])), 2),
                      "what differs": ARMS[arm][0]})
    return table


def noise_power(quality: int) -> float:
    """JPEG's quantisation noise power at ``quality``, relative to quality 50: libjpeg's table scaling, squared."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return (scale / 100) ** 2


def line_fit(xs: list[float], ys: list[float], variances: list[float]) -> tuple[float, float, float]:
    """Weighted least squares y = a + b x with weights 1/variance: (a, b, standard error of b). Equal
    weights where a variance is zero (one seed)."""
    w = [1 / v for v in variances] if all(v > 0 for v in variances) else [1.0] * len(xs)
    sw = sum(w)
    xm, ym = sum(wi * x for wi, x in zip(w, xs)) / sw, sum(wi * y for wi, y in zip(w, ys)) / sw
    sxx = sum(wi * (x - xm) ** 2 for wi, x in zip(w, xs))
    b = sum(wi * (x - xm) * (y - ym) for wi, x, y in zip(w, xs, ys)) / sxx
    return ym - b * xm, b, math.sqrt(1 / sxx) if all(v > 0 for v in variances) else float("nan")


def jpeg_cost(errors: dict[str, dict[str, list[float]]]) -> dict | None:
    """What the JPEG-75 copy costs in validation error against lossless images, as an interval over the
    two models of re-encoding (see the module's text); None without two JPEG qualities."""
    arms = [a for a in JPEG_ARMS if a in errors]
    if len(arms) < 2:
        return None
    base_q = JPEG_ARMS["base"]
    ys = [mean_sd(errors[a]["val"])[0] for a in arms]
    var = [mean_sd(errors[a]["val"])[1] ** 2 / len(errors[a]["val"]) for a in arms]
    fits = {}
    for model, extra in (("absorbed", 0.0), ("added", noise_power(base_q))):
        xs = [noise_power(JPEG_ARMS[a]) + (extra if a != "base" else 0.0) for a in arms]
        a, b, se = line_fit(xs, ys, var)
        fits[model] = {"cost": b * noise_power(base_q), "se": se * noise_power(base_q), "lossless error %": a}
    low, high = sorted(fits.values(), key=lambda f: f["cost"])
    return {"cost low": round(low["cost"], 2), "cost high": round(high["cost"], 2),
            "se": round(max(low["se"], high["se"]), 2),
            "lossless error %": sorted(round(f["lossless error %"], 2) for f in fits.values())}


def size_gain(errors: dict[str, dict[str, list[float]]], sizes: dict[str, int], target: int = 50_000) -> dict | None:
    """The validation error at ``target`` training images, from the base and the smaller arm, with error
    linear in log(size); None without the ``train-40k`` arm."""
    if "train-40k" not in errors or sizes.get("train-40k", 0) >= sizes.get("base", 0):
        return None
    (mb, sb), (ms, ss) = mean_sd(errors["base"]["val"]), mean_sd(errors["train-40k"]["val"])
    factor = math.log(target / sizes["base"]) / math.log(sizes["base"] / sizes["train-40k"])
    se = math.sqrt(sb ** 2 / len(errors["base"]["val"]) + ss ** 2 / len(errors["train-40k"]["val"]))
    return {"target": target, "val error %": round(mb - factor * (ms - mb), 2), "gain": round(factor * (ms - mb), 2),
            "se": round(factor * se, 2), "sizes": dict(sizes)}


def verdict(table: list[dict]) -> list[str]:
    lines = []
    for row in table:
        if row["arm"] == "base":
            continue
        effect, se = row["effect on val error"], row["effect se"]
        z = effect / se if se else math.inf
        word = ("lowers" if effect < 0 else "raises") if abs(z) >= 2 else "does not measurably change"
        lines.append(f"{row['arm']}: {word} the validation error ({effect:+.2f} +- {se:.2f} points; "
                     f"{row['seeds']} seeds, smallest detectable {row['smallest detectable']:.2f}).")
    return lines


@register("ablation", AblationOptions,
          summary="the paper recipe against arms changing one thing each (precision, BN decay, mean, BN batch, "
                  "data size, JPEG quality), several seeds")
def run_ablation(base: RunConfig, options: AblationOptions, folder: ExperimentDir, ctx: Context) -> dict:
    # seed-major: a stopped experiment has every arm at the same number of seeds, so far
    configs = [arm_config(base, arm, seed, str(folder.runs_root)) for seed in range(options.seeds) for arm in options.arms]
    runs = train_configs(configs, progress=ctx.progress, log=ctx.log, jobs=ctx.jobs)
    errors: dict[str, dict[str, list[float]]] = {arm: {"val": [], "train": []} for arm in options.arms}
    sizes: dict[str, int] = {}
    for cfg, run in zip(configs, runs):
        f = run_figures(run)
        arm = cfg.name.rsplit("-s", 1)[0]
        errors[arm]["val"].append(100 * f["final"]["val_error"])
        errors[arm]["train"].append(100 * f["train_error"])
        sizes[arm] = round(f["summary"]["steps"] * cfg.data.batch_size / f["summary"]["epochs"])  # training images
    table = summarise(errors)
    jpeg = [{"quality": JPEG_ARMS[r["arm"]], "val error %": r["val error %"], "val sd": r["val sd"]}
            for r in table if r["arm"] in JPEG_ARMS]
    cost, gain = jpeg_cost(errors), size_gain(errors, sizes)
    lines = verdict(table)
    if cost:
        lines.append(f"JPEG: the quality-75 copy costs between {cost['cost low']:+.2f} and {cost['cost high']:+.2f} "
                     f"points of validation error against lossless images (+- {cost['se']:.2f}; error fitted as a "
                     "line in JPEG's quantisation noise power, re-encoding's first rounding absorbed or added).")
    if gain:
        lines.append(f"Data: {gain['target']:,} training images instead of {sizes['base']:,} would change the "
                     f"validation error by {-gain['gain']:+.2f} +- {gain['se']:.2f} points (error linear in the log "
                     f"of the size, from the {sizes['train-40k']:,}-image arm).")
    steps = base.train.steps or f"{base.train.epochs} epochs"
    return finish(folder, {
        "title": f"Why {base.model.name} lands off the paper: one lever at a time", "kind": "ablation",
        "runs": [c.name for c in configs], "table": table, "jpeg": sorted(jpeg, key=lambda r: -r["quality"]),
        "jpeg_cost": cost, "size_gain": gain, "verdict": lines,
        "description": f"{base.model.name} on {base.data.dataset}, {steps} a run, {options.seeds} seeds an arm "
                       f"(train.seed 0..{options.seeds - 1}), one held-out split; errors are final ones, in %."})
