"""Statistics of the ablation (:mod:`reslab.experiments.ablation`): what its arms say beyond their table.

JPEG arms re-encode the shared JPEG-75 copy at lower quality. That compresses twice, so it bounds the
JPEG effect instead of measuring it. :func:`jpeg_cost` puts a number on it: JPEG quantises the DCT
coefficients with libjpeg's standard tables scaled by s(q) = 5000/q (q < 50) or 200 - 2q (q >= 50) per
cent, so its noise power grows as s(q)^2; the error is fitted as a line in that noise power (weighted by
each arm's standard error) and read at zero, the lossless images. Re-encoding a JPEG-75 image at a coarser
step either absorbs the first rounding (noise power s(q)^2, the steeper line) or adds to it (0.25 + s(q)^2,
the flatter). The arms say nothing of the curve between the lossless images and quality 75, so where they
bend away from a line the chord from quality 75 to the next quality down (the slope nearest the lossless
end) is read too, and where they miss the line by more than their seeds' spread explains, the line's
standard error is widened to match (:func:`lack_of_fit`). The JPEG-75 copy's cost is reported as the
interval from the lowest of these readings to the highest.
:func:`size_gain` reads the 40k arm the same way: error linear in the log of the training-set size (the
local form of a learning curve), extrapolated from 45k to 50k.

With ``experiment.reference`` naming a finished full-length run of the recipe (``results/cifar10_resnet20_paper``),
:func:`gap_split` splits that run's gap to He et al.'s test error into the measured causes: each lever in which the
reference differs from the paper (read from its config and summary), the JPEG cost, the missing 5k training images,
the sampling noise of a 5k validation split against a 10k test set, and the seed noise of two single runs (the
reference's and the paper's). The effects come from shorter runs; that they carry over is assumed, and said.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from reslab.config import RunConfig
from reslab.experiments.common import training_images
from reslab.experiments.degradation import PAPER_TEST_ERROR

JPEG_ARMS = {"base": 75, "jpeg-50": 50, "jpeg-30": 30}  # the shared copy is JPEG quality 75
PARTS = ("decay-bn", "pixel-mean", "ghost-bn-64")  # what the combined arm turns on together
CIFAR10_TEST_IMAGES = 10_000  # the test set He et al. report on
KEPT = ("cause", "arm", "low", "high", "se")  # what the record keeps of a cause of the gap


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def mean_var(values: list[float]) -> tuple[float, float]:
    """The mean and the variance of the mean (s^2 / n)."""
    m, s = mean_sd(values)
    return m, s ** 2 / len(values)


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (the normal one at df = inf)."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def welch_df(terms: list[tuple[float, float, int]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a linear combination sum c_i m_i of independent means, each
    term (c_i, variance of m_i, n_i): (sum c^2 v)^2 / sum (c^2 v)^2 / (n - 1); inf where no variance is left."""
    den = sum((c * c * v) ** 2 / (n - 1) for c, v, n in terms if n > 1)
    return sum(c * c * v for c, v, _ in terms) ** 2 / den if den > 0 else math.inf


def contrast_se(terms: list[tuple[float, float, int]]) -> tuple[float, float]:
    """The standard error and Welch degrees of freedom of sum c_i m_i over independent means, each term
    (c_i, variance of m_i, n_i)."""
    return math.sqrt(sum(c * c * v for c, v, _ in terms)), welch_df(terms)


def t_test(estimate: float, se: float, df: float) -> dict[str, float]:
    """Two-sided test of ``estimate`` against zero: the half-width of its 95% interval and the p-value (Welch's
    test when ``df`` comes from :func:`welch_df`). With 3 seeds an arm df is about 4, where the 95% point is 2.78
    standard errors, not 1.96."""
    from scipy import stats

    if se == 0:
        return {"ci95": 0.0, "p": 0.0 if estimate else 1.0}
    return {"ci95": t_quantile(0.975, df) * se, "p": float(2 * stats.t.sf(abs(estimate) / se, df))}


def dunnett(errors: dict[str, dict[str, list[float]]]) -> dict[str, float] | None:
    """Dunnett's test of every arm against the base: p-values adjusted for testing several arms against one
    base (the chance that any arm without an effect is called one stays 5%; Welch's test of each arm alone
    makes that chance grow with the arms), on the arms' pooled variance. None with no arm beside the base, an
    arm with a single seed, or no spread at all. Its p-values come from a quasi-Monte Carlo integral
    (``random_state=0``, so a record is reproducible; good to about 1e-3: 0.0270 against Student's exact
    0.0272 for a single arm)."""
    from scipy import stats

    others = [a for a in errors if a != "base"]
    if "base" not in errors or not others or any(len(e["val"]) < 2 for e in errors.values()) \
            or all(mean_sd(e["val"])[1] == 0 for e in errors.values()):
        return None
    result = stats.dunnett(*(errors[a]["val"] for a in others), control=errors["base"]["val"], random_state=0)
    return {a: float(p) for a, p in zip(others, result.pvalue)}


def detectable(sd_a: float, n_a: int, sd_b: float, n_b: int, *, power: float = 0.8) -> float:
    """The smallest difference of two means that a two-sided 5% t-test detects with ``power``:
    (t_0.975 + t_power) x pooled sd x sqrt(1/n_a + 1/n_b), on n_a + n_b - 2 degrees of freedom."""
    df = n_a + n_b - 2
    pooled = math.sqrt(((n_a - 1) * sd_a ** 2 + (n_b - 1) * sd_b ** 2) / df)
    return (t_quantile(0.975, df) + t_quantile(power, df)) * pooled * math.sqrt(1 / n_a + 1 / n_b)


def noise_power(quality: int) -> float:
    """JPEG's quantisation noise power at ``quality``, relative to quality 50: libjpeg's table scaling, squared."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return (scale / 100) ** 2


class Line(NamedTuple):
    """A fitted line y = intercept + slope x; ``se``: the slope's standard error; ``coef``: the slope as a
    linear function of the points, slope = sum_j coef[j] y[j] (what propagates the points' errors)."""

    intercept: float
    slope: float
    se: float
    coef: list[float]


def line_fit(xs: list[float], ys: list[float], variances: list[float]) -> Line:
    """Weighted least squares y = a + b x with weights 1/variance. Where a variance is zero (seeds that agree
    exactly) the points weigh the same and the standard error comes from the residuals instead."""
    known = all(v > 0 for v in variances)
    w = [1 / v for v in variances] if known else [1.0] * len(xs)
    sw = sum(w)
    xm, ym = sum(wi * x for wi, x in zip(w, xs)) / sw, sum(wi * y for wi, y in zip(w, ys)) / sw
    sxx = sum(wi * (x - xm) ** 2 for wi, x in zip(w, xs))
    coef = [wi * (x - xm) / sxx for wi, x in zip(w, xs)]
    b = sum(c * y for c, y in zip(coef, ys))
    a = ym - b * xm
    if known or len(xs) < 3:  # nan: two points of unknown variance leave nothing to estimate it from
        se = math.sqrt(1 / sxx) if known else float("nan")
    else:
        se = math.sqrt(sum((y - a - b * x) ** 2 for x, y in zip(xs, ys)) / (len(xs) - 2) / sxx)
    return Line(a, b, se, coef)


def lack_of_fit(xs: list[float], ys: list[float], variances: list[float], line: Line) -> dict | None:
    """How far the points miss a line fitted with known variances: chi^2 = sum (y - a - b x)^2 / variance, its
    degrees of freedom (points - 2) and p-value, and the Birge ratio sqrt(max(1, chi^2 / df)) that widens the
    slope's standard error when the points scatter about the line more than their own errors explain. None with
    two points or a variance of zero (:func:`line_fit` then takes the error from the residuals)."""
    from scipy import stats

    df = len(xs) - 2
    if df < 1 or not all(v > 0 for v in variances):
        return None
    chi2 = sum((y - line.intercept - line.slope * x) ** 2 / v for x, y, v in zip(xs, ys, variances))
    return {"chi2": chi2, "df": df, "p": float(stats.chi2.sf(chi2, df)), "factor": math.sqrt(max(1.0, chi2 / df))}


def jpeg_cost(errors: dict[str, dict[str, list[float]]]) -> dict | None:
    """What the JPEG-75 copy costs in validation error against lossless images, as an interval over the
    readings (see the module's text); None without two JPEG qualities.

    Each model of re-encoding is read two ways: the weighted line through every quality, and, with three or more
    qualities, the chord from quality 75 to the next one down (the slope nearest the lossless end, which differs
    from the line's when the arms bend). The interval runs from the lowest reading to the highest. A line's
    standard error includes the points' scatter about it where that exceeds their seeds' spread
    (:func:`lack_of_fit`): ``excess var`` is that part of the variance, which the arms' coefficients (``coef``)
    do not carry."""
    arms = [a for a in JPEG_ARMS if a in errors]
    if len(arms) < 2:
        return None
    unit = noise_power(JPEG_ARMS["base"])  # the copy's own noise power: the cost is the slope times it
    ys, var = map(list, zip(*(mean_var(errors[a]["val"]) for a in arms)))
    fits, readings = {}, []
    for model, extra in (("absorbed", 0.0), ("added", unit)):
        xs = [noise_power(JPEG_ARMS[a]) + (extra if a != "base" else 0.0) for a in arms]
        line = line_fit(xs, ys, var)
        fit = lack_of_fit(xs, ys, var, line)
        factor = fit["factor"] if fit else 1.0
        fits[model] = {"intercept": line.intercept, "slope": line.slope, "lack of fit": fit,
                       "x": {str(JPEG_ARMS[arm]): x for arm, x in zip(arms, xs)}}
        readings.append({"model": model, "shape": "line", "cost": line.slope * unit, "se": factor * line.se * unit,
                         "excess var": (factor ** 2 - 1) * (line.se * unit) ** 2, "lossless error %": line.intercept,
                         "coef": {arm: unit * c for arm, c in zip(arms, line.coef)}})
        if len(arms) > 2:  # the chord from the copy (quality 75, first) to the next quality down
            dx, slope = xs[1] - xs[0], (ys[1] - ys[0]) / (xs[1] - xs[0])
            fits[model]["chord"] = {"intercept": ys[0] - slope * xs[0], "slope": slope}
            readings.append({"model": model, "shape": "chord", "cost": slope * unit,
                             "se": unit * math.sqrt(var[0] + var[1]) / dx, "excess var": 0.0,
                             "lossless error %": ys[0] - slope * xs[0],
                             "coef": {arms[0]: -unit / dx, arms[1]: unit / dx}})
    low, high = min(readings, key=lambda r: r["cost"]), max(readings, key=lambda r: r["cost"])
    return {"cost low": round(low["cost"], 2), "cost high": round(high["cost"], 2),
            "se": round(max(low["se"], high["se"]), 2),
            "lossless error %": sorted({round(r["lossless error %"], 2) for r in (low, high)}),
            "coef low": low["coef"], "coef high": high["coef"],
            "excess var low": low["excess var"], "excess var high": high["excess var"],
            "readings": [{**{k: r[k] for k in ("model", "shape")}, "cost": round(r["cost"], 2), "se": round(r["se"], 2)}
                         for r in readings], "fits": fits}


def size_gain(errors: dict[str, dict[str, list[float]]], sizes: dict[str, int], target: int = 50_000) -> dict | None:
    """The validation error at ``target`` training images, from the base and the smaller arm, with error
    linear in log(size); None without the ``train-40k`` arm."""
    if "train-40k" not in errors or sizes.get("train-40k", 0) >= sizes.get("base", 0):
        return None
    (mb, vb), (ms, vs) = mean_var(errors["base"]["val"]), mean_var(errors["train-40k"]["val"])
    factor = math.log(target / sizes["base"]) / math.log(sizes["base"] / sizes["train-40k"])
    se, _ = contrast_se([(factor, vs, len(errors["train-40k"]["val"])), (-factor, vb, len(errors["base"]["val"]))])
    return {"target": target, "val error %": round(mb - factor * (ms - mb), 2), "gain": round(factor * (ms - mb), 2),
            "se": round(se, 2), "sizes": dict(sizes), "coef": {"train-40k": factor, "base": -factor}}


def additivity(errors: dict[str, dict[str, list[float]]]) -> dict | None:
    """The combined arm's effect against the sum of its parts' effects, the standard error of their difference
    (combined - sum of parts = m_c - sum m_i + (k - 1) m_base: the arms share the base), its Welch degrees of
    freedom, 95% half-width and p-value."""
    if "combined" not in errors or not all(p in errors for p in PARTS):
        return None
    (mb, vb), (mc, vc) = mean_var(errors["base"]["val"]), mean_var(errors["combined"]["val"])
    parts = [mean_var(errors[p]["val"]) for p in PARTS]
    total = sum(m - mb for m, _ in parts)
    terms = [(1.0, vc, len(errors["combined"]["val"])), (len(PARTS) - 1.0, vb, len(errors["base"]["val"]))]
    terms += [(-1.0, v, len(errors[p]["val"])) for p, (_, v) in zip(PARTS, parts)]
    se, df = contrast_se(terms)
    test = t_test(mc - mb - total, se, df)
    return {"combined": round(mc - mb, 2), "sum of parts": round(total, 2), "difference": round(mc - mb - total, 2),
            "se": round(se, 2), "df": round(df, 1), "ci95": round(test["ci95"], 2), "p": float(f"{test['p']:.3g}")}


def gap_causes(ref: RunConfig, summary: dict) -> dict[str, tuple[bool, int, str]]:
    """Per lever arm: whether the reference run differs from He et al. in it, the sign that turns the arm's
    effect into the error it adds to the reference (+1: the arm is what the reference did; -1: what the paper
    did), and what it is."""
    return {
        "bf16": (summary.get("precision") == "bf16", 1, "bf16 training (He et al.: fp32)"),
        "decay-bn": (not ref.optim.decay_norm_and_bias, -1,
                     "no weight decay on BatchNorm/bias (the paper does not say; fb.resnet.torch decays them)"),
        "pixel-mean": (ref.data.normalize != "pixel", -1, "per-channel mean/std (He et al.: per-pixel mean)"),
        "ghost-bn-64": (ref.data.batch_size // ref.train.accumulate > 64, -1,
                        f"BatchNorm over {ref.data.batch_size // ref.train.accumulate} images (He et al.: 64 a GPU)"),
    }


def gap_split(table: list[dict], cost: dict | None, gain: dict | None, ref: RunConfig, summary: dict,
              base_images: int, variances: dict[str, float], elsewhere: dict[str, dict] | None = None) -> dict:
    """The reference run's gap to the paper's test error, split into the causes the arms measured (points of
    error each adds to the reference, with standard errors); the JPEG cost is an interval, so the sums are.

    Every cause is linear in the arms' means (``variances``: each arm's variance of the mean), and the causes
    share the base arm, so the sum's standard error adds the coefficients arm by arm before squaring. A lever in
    which the reference differs from the paper but which no arm measured (the bf16 arm, on a CPU that cannot
    run it) takes its reading from ``elsewhere`` (arm: that lever's effect and standard error, measured by another
    record) or is listed under ``unmeasured``: its share, whatever it is, stays inside the unexplained rest. Such a
    reading pairs one run a side over ``networks`` networks, so its standard error is at least what the base arm's
    seed spread gives those pairs (sd * sqrt(2 / networks)): a few networks that agree by chance do not make it
    precise."""
    ref_error, paper = 100 * summary["final"]["val_error"], PAPER_TEST_ERROR[ref.model.name]
    effects = {r["arm"]: (r["effect on val error"], r["effect se"]) for r in table if r["arm"] != "base"}
    sd = next((r.get("val sd") for r in table if r["arm"] == "base"), None)  # one run's spread: the base's seeds
    rows, unmeasured = [], []
    for arm, (differs, sign, what) in gap_causes(ref, summary).items():
        if differs and arm not in effects and arm in (elsewhere or {}):  # measured by another record
            x = elsewhere[arm]
            se = max(x["se"], round(sd * math.sqrt(2 / x["networks"]), 2) if sd and x.get("networks") else 0.0)
            rows.append({"cause": f"{what}, from {x['source']}", "arm": "", "low": sign * x["effect"],
                         "high": sign * x["effect"], "se": se, "coef": ({}, {}), "excess": (se ** 2,) * 2})
        elif differs and arm not in effects:
            unmeasured.append({"cause": what, "arm": arm})  # the reference differs here, but no arm measured it
        elif differs:
            rows.append({"cause": what, "arm": arm, "low": sign * effects[arm][0], "high": sign * effects[arm][0],
                         "se": effects[arm][1], "coef": ({arm: sign, "base": -sign},) * 2})
    images = training_images(summary, ref.data.batch_size)
    if gain and images == base_images:
        rows.append({"cause": f"{images:,} training images (He et al.: {gain['target']:,})", "arm": "train-40k",
                     "low": gain["gain"], "high": gain["gain"], "se": gain["se"], "coef": (gain["coef"],) * 2})
    if cost and ref.data.jpeg_quality == 0:
        rows.append({"cause": "the JPEG-75 copy (He et al.: the lossless images)", "arm": "jpeg-50, jpeg-30",
                     "low": cost["cost low"], "high": cost["cost high"], "se": cost["se"],
                     "coef": (cost["coef low"], cost["coef high"]),
                     "excess": (cost.get("excess var low", 0.0), cost.get("excess var high", 0.0))})
    p, q, n = ref_error / 100, paper / 100, ref.data.val_size
    sampling = 100 * math.sqrt(p * (1 - p) / n + q * (1 - q) / CIFAR10_TEST_IMAGES)
    rows.append({"cause": f"sampling: {n:,} held-out images against the paper's {CIFAR10_TEST_IMAGES:,} test images",
                 "arm": "", "low": 0.0, "high": 0.0, "se": round(sampling, 2), "coef": ({}, {})})
    if sd:  # the reference and the paper are one training run each, and each carries it
        rows.append({"cause": "seeds: the reference and the paper are one training run each (the base arm's spread)",
                     "arm": "base", "low": 0.0, "high": 0.0, "se": round(math.sqrt(2) * sd, 2), "coef": ({}, {}),
                     "excess": (2 * sd * sd,) * 2})
    gap = ref_error - paper
    low, high = sum(r["low"] for r in rows), sum(r["high"] for r in rows)
    spread = []
    for end in (0, 1):
        total: dict[str, float] = {}
        for r in rows:
            for arm, c in r["coef"][end].items():
                total[arm] = total.get(arm, 0.0) + c
        excess = sum(r.get("excess", (0.0, 0.0))[end] for r in rows)  # JPEG's lack of fit, seeds, elsewhere
        spread.append(math.sqrt(sum(c * c * variances[arm] for arm, c in total.items()) + excess + sampling ** 2))
    return {"reference error %": round(ref_error, 2), "paper error %": paper, "gap": round(gap, 2),
            "reference steps": summary["steps"],
            "causes": [{k: round(v, 2) if k in ("low", "high") else v for k, v in r.items() if k in KEPT} for r in rows],
            "explained": [round(low, 2), round(high, 2)], "unexplained": [round(gap - high, 2), round(gap - low, 2)],
            "se": round(max(spread), 2), "unmeasured": unmeasured}
