"""Why reslab's paper recipe lands off He et al.'s numbers: one base recipe, arms that each change one
thing, several seeds per arm.

The base is the config given (``configs/cifar10_ablation.toml``: the paper recipe compressed in time).
Each arm applies its overrides to it; every (arm, seed) pair is one run, ``<arm>-s<seed>``, trained with
``train.seed = seed`` on the same held-out split. The table gives each arm's mean and sample standard
deviation of the final validation (and training) error over its seeds; an arm's effect is its mean
minus the base's, with the standard error sqrt(s_a^2/n_a + s_b^2/n_b), tested by Welch's t-test (its
Satterthwaite degrees of freedom, about 4 with 3 seeds an arm: the 95% interval is +- 2.78 standard
errors, not 1.96). The smallest effect the design detects (two-sided 5%, 80% power) is
(t_0.975 + t_0.8) x pooled s x sqrt(1/n_a + 1/n_b), 3.7 x s x sqrt(2/n) at n = 3: the table states it per arm.
Seven arms tested so at 3 seeds call an effect somewhere in about 17% of ablations in which no lever
does anything (``benchmarks/ablation_null.py``; each test alone is conservative there, 3.4%); so the
table also gives Dunnett's p, adjusted for comparing every arm with one base (on the pooled variance),
and the verdict flags an effect that Welch's test of its arm finds but Dunnett's does not.

The numbers past the table (the JPEG cost, the size gain, whether effects add up, the gap to the paper
split into causes) come from :mod:`reslab.experiments.gap`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from reslab.config import RunConfig, apply_overrides, as_dict, config_from_dict
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import finish, run_figures, training_images
from reslab.experiments.degradation import PAPER_TEST_ERROR
from reslab.experiments.gap import (JPEG_ARMS, additivity, contrast_se, detectable, dunnett, gap_split, jpeg_cost, mean_sd,
                                    mean_var, size_gain, t_test)
from reslab.rundir import ExperimentDir, RunDir
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


@dataclass(frozen=True)
class AblationOptions:
    arms: tuple[str, ...] = tuple(ARMS)
    seeds: int = 3
    reference: str = ""  # a finished full-length run of the same recipe whose gap to the paper is split into causes
    precision_from: str = ""  # a record of bf16 runs set beside fp32 ones (depth --experiment.beside): the bf16 lever

    def check(self) -> None:
        for arm in self.arms:
            if arm not in ARMS:
                raise ConfigError(f"unknown ablation arm {arm!r}; known: {', '.join(ARMS)}")
        if "base" not in self.arms:
            raise ConfigError("the ablation needs its base arm: every effect is measured against it")
        if self.seeds < 2:
            raise ConfigError(f"experiment.seeds must be at least 2 (a spread needs two runs), got {self.seeds}")

    def read_reference(self, base: RunConfig) -> tuple[RunConfig, dict] | None:
        """The reference run's config and summary, checked before any training; None without one."""
        if not self.reference:
            return None
        run = RunDir(self.reference)
        summary = run.read_summary() if run.config_file.is_file() else None
        if not summary or "val_error" not in summary.get("final", {}):
            raise ConfigError(f"experiment.reference: no finished run with a validation error at {self.reference}")
        cfg = run.read_config()
        if cfg.model.name != base.model.name or cfg.model.name not in PAPER_TEST_ERROR:
            raise ConfigError(f"experiment.reference: {self.reference} trained {cfg.model.name}; the ablation trains "
                              f"{base.model.name} (the gap is split for the same CIFAR network, one in He et al. Table 6)")
        return cfg, summary

    def read_precision(self) -> dict[str, dict] | None:
        """The bf16 lever as another record measured it (its runs paired by network, bf16 against fp32 and nothing
        else), for the gap split where no bf16 arm ran; checked before any training. None without one."""
        if not self.precision_from:
            return None
        where = f"experiment.precision_from: {self.precision_from}"
        record = ExperimentDir(self.precision_from).read() if Path(self.precision_from).is_dir() else None
        beside = record.get("beside") if isinstance(record, dict) else None
        if not isinstance(beside, dict) or not isinstance(beside.get("se"), (int, float)):
            raise ConfigError(f"{where} is no record with runs of two or more networks set beside its own "
                              "(reslab experiment depth --experiment.beside)")
        found = re.fullmatch(r"train\.precision: (\w+) there, (\w+) here", "; ".join(beside.get("differs", [])))
        if not found or {found[1], found[2]} != {"bf16", "fp32"}:
            raise ConfigError(f"{where}: its two sets of runs differ in {'; '.join(beside.get('differs', [])) or 'nothing'}"
                              ", not in the precision alone (bf16 against fp32)")
        effect = -beside["mean"] if found[2] == "fp32" else beside["mean"]  # bf16's error minus fp32's
        networks = len(beside.get("pairs", {}))
        return {"bf16": {"effect": effect, "se": beside["se"], "networks": networks,
                         "source": f"{self.precision_from} ({networks} networks, one run a side)"}}


def arm_config(base: RunConfig, arm: str, seed: int, root: str) -> RunConfig:
    cfg = config_from_dict(apply_overrides(as_dict(replace(base, experiment={})), ARMS[arm][1]))
    return replace(cfg, name=f"{arm}-s{seed}", out_dir=root, train=replace(cfg.train, seed=seed))


def summarise(errors: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Per arm: mean and spread of final errors (%), the effect against the base with its standard error,
    Welch degrees of freedom, 95% half-width and p-value, and the smallest effect these seeds would detect."""
    base_m, base_s = mean_sd(errors["base"]["val"])
    n_base = len(errors["base"]["val"])
    adjusted = dunnett(errors) or {}
    table = []
    for arm, e in errors.items():
        m, s = mean_sd(e["val"])
        tm, ts = mean_sd(e["train"])
        n = len(e["val"])
        se, df = contrast_se([(1.0, s ** 2 / n, n), (-1.0, base_s ** 2 / n_base, n_base)])
        test = t_test(m - base_m, se, df)
        effect = arm != "base"
        table.append({"arm": arm, "seeds": n, "val error %": round(m, 2), "val sd": round(s, 2),
                      "train error %": round(tm, 2), "train sd": round(ts, 2),
                      "effect on val error": round(m - base_m, 2) if effect else None,
                      "effect se": round(se, 2) if effect else None,
                      "effect ci95": round(test["ci95"], 2) if effect else None,
                      "effect p": float(f"{test['p']:.3g}") if effect else None,  # 3 digits: 0.0496 stays below 0.05
                      "effect df": round(df, 1) if effect else None,
                      # as Welch's, 3 digits; its quasi-Monte Carlo integral is good to about 1e-3
                      "effect p (Dunnett)": float(f"{adjusted[arm]:.3g}") if arm in adjusted else None,
                      "smallest detectable": round(detectable(s, n, base_s, n_base), 2) if effect else None,
                      "what differs": ARMS[arm][0]})
    return table


def verdict(table: list[dict]) -> list[str]:
    """A line per arm: Welch's test of the arm against the base decides the word; with several arms, Dunnett's
    adjusted p is given beside it, and an effect that does not survive it is flagged as possibly chance."""
    lines = []
    arms = sum(row["arm"] != "base" for row in table)
    for row in table:
        if row["arm"] == "base":
            continue
        effect, p, q = row["effect on val error"], row["effect p"], row.get("effect p (Dunnett)")
        word = ("lowers" if effect < 0 else "raises") if p < 0.05 else "does not measurably change"
        adjusted = chance = ""
        if q is not None and arms > 1:
            shown = "< 0.001" if q < 1e-3 else f"= {q:.3g}"  # the integral is good to about 1e-3
            adjusted = f", Dunnett p {shown} over {arms} arms"
            if p < 0.05 <= q:
                chance = f" Not once {arms} arms are tested against one base (Dunnett): it may be chance."
        lines.append(f"{row['arm']}: {word} the validation error ({effect:+.2f} +- {row['effect ci95']:.2f} points, "
                     f"95% interval; Welch p = {p:.3g}{adjusted}; {row['seeds']} seeds, smallest detectable "
                     f"{row['smallest detectable']:.2f}).{chance}")
    return lines


@register("ablation", AblationOptions,
          recipe="configs/cifar10_ablation.toml",
          summary="the paper recipe against arms changing one thing each (precision, BN decay, mean, BN batch, "
                  "data size, JPEG quality), several seeds")
def run_ablation(base: RunConfig, options: AblationOptions, folder: ExperimentDir, ctx: Context) -> dict:
    reference = options.read_reference(base)  # before hours of training, not after
    elsewhere = options.read_precision()
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
        sizes[arm] = training_images(f["summary"], cfg.data.batch_size)
    table = summarise(errors)
    jpeg = [{"quality": JPEG_ARMS[r["arm"]], "val error %": r["val error %"], "val sd": r["val sd"]}
            for r in table if r["arm"] in JPEG_ARMS]
    cost, gain, adds = jpeg_cost(errors), size_gain(errors, sizes), additivity(errors)
    variances = {arm: mean_var(e["val"])[1] for arm, e in errors.items()}
    gap = gap_split(table, cost, gain, *reference, sizes["base"], variances, elsewhere) if reference else None
    lines = verdict(table)
    if cost:
        lines.append(f"JPEG: the quality-75 copy costs between {cost['cost low']:+.2f} and {cost['cost high']:+.2f} "
                     f"points of validation error against lossless images (standard error {cost['se']:.2f}; error read as "
                     f"{_shapes(cost)} in JPEG's quantisation noise power, re-encoding's first rounding absorbed or "
                     "added)" + _fit_note(cost) + ".")
    if gain:
        lines.append(f"Data: {gain['target']:,} training images instead of {sizes['base']:,} would change the "
                     f"validation error by {-gain['gain']:+.2f} points (standard error {gain['se']:.2f}; error "
                     f"linear in the log of the size, from the {sizes['train-40k']:,}-image arm).")
    if adds:
        word = "add up" if adds["p"] >= 0.05 else "do not add up"
        lines.append(f"Together: the combined arm moves the error {adds['combined']:+.2f} points, its parts one at a "
                     f"time {adds['sum of parts']:+.2f}; the effects {word} (difference {adds['difference']:+.2f} "
                     f"+- {adds['ci95']:.2f}, 95% interval; Welch p = {adds['p']:.3g}).")
    if gap:
        lines.append(f"Gap: the reference run ends at {gap['reference error %']:.2f}% against the paper's "
                     f"{gap['paper error %']:.2f}%, {gap['gap']:.2f} points. The measured causes explain "
                     f"{_span(gap['explained'])} points (standard error {gap['se']:.2f}); left unexplained: "
                     f"{_span(gap['unexplained'])}. The effects come from runs of {base.train.steps or '?'} iterations, "
                     f"the reference ran {gap['reference steps']:,}: that they carry over is assumed, not measured.")
        if gap["unmeasured"]:
            lines.append("Not measured, so inside what is left unexplained: " + "; ".join(
                f"{u['cause']} (no {u['arm']} arm in this record)" for u in gap["unmeasured"]) + ".")
    steps = base.train.steps or f"{base.train.epochs} epochs"
    return finish(folder, {
        "title": f"Why {base.model.name} lands off the paper: one lever at a time", "kind": "ablation",
        "runs": [c.name for c in configs], "table": table, "jpeg": sorted(jpeg, key=lambda r: -r["quality"]),
        "jpeg_cost": cost, "size_gain": gain, "additivity": adds, "gap": gap, "verdict": lines,
        "reference": options.reference or None, "precision_from": options.precision_from or None,
        "description": f"{base.model.name} on {base.data.dataset}, {steps} a run, {options.seeds} seeds an arm "
                       f"(train.seed 0..{options.seeds - 1}), one held-out split; errors are final ones, in %."})


def _shapes(cost: dict) -> str:
    chord = [r for r in cost.get("readings", []) if r["shape"] == "chord"]
    return ("a line through every quality or the chord from quality 75 to the next one down" if chord
            else "a line")


def _fit_note(cost: dict) -> str:
    """What the JPEG line's lack of fit says, for the verdict: empty when it was not tested."""
    fits = [f["lack of fit"] for f in cost["fits"].values() if f.get("lack of fit")]
    if not fits:
        return ""
    worst = min(fits, key=lambda f: f["p"])
    how = (f"the arms scatter about the line more than their seeds explain, so its standard error is widened "
           f"{worst['factor']:.1f} times to match" if worst["factor"] > 1 else "the line fits within the seeds' spread")
    return f"; chi2 = {worst['chi2']:.1f} on {worst['df']} df about the line, p = {worst['p']:.3g}: {how}"


def _span(pair: list[float]) -> str:
    return f"{pair[0]:.2f}" if pair[0] == pair[1] else f"between {pair[0]:.2f} and {pair[1]:.2f}"
