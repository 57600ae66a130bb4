"""Another record's runs of the same networks, set beside an experiment's own.

Says in which settings the two sets of runs differ (each run's stored config read through today's schema, the
precision as resolved when it trained) and how far each network's final validation error moves between them.
When one setting alone differs this is a one-lever comparison, paired by network: the bf16 degradation runs
at depths 20 and 56 beside the fp32 depth runs measure what bf16 costs at that budget. Each network is one run
on each side, so the spread of the differences across networks is all there is to judge them by: it holds the
seed noise and any real difference between networks' responses to the lever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reslab.config import as_dict, config_from_dict
from reslab.errors import ConfigError, ReslabError
from reslab.experiments.common import pct
from reslab.experiments.gap import mean_sd, t_test
from reslab.rundir import RunDir

NOT_SETTINGS = ("name", "out_dir", "model.", "experiment")  # what names a run or its experiment, not its training


def finished_runs(path: str) -> dict[str, dict[str, Any]]:
    """Each finished run's summary under ``path`` (run folders in it or in its runs/ folder), by model."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"experiment.beside: no such folder: {path}")
    found: dict[str, dict[str, Any]] = {}
    for parent in (root, root / "runs"):
        for folder in sorted(parent.iterdir()) if parent.is_dir() else ():
            try:
                summary = RunDir(folder).read_summary() if folder.is_dir() else None
            except ReslabError as e:
                raise ConfigError(f"experiment.beside: {e}") from None
            if isinstance(summary, dict) and summary.get("model") and "val_error" in summary.get("final", {}):
                found[summary["model"]] = summary
    if not found:
        raise ConfigError(f"experiment.beside: no finished run with a validation error under {path}")
    return found


def settings(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's training settings, flat (``section.key``), with the precision it resolved to."""
    try:
        tree = as_dict(config_from_dict(summary["config"]))
    except (ReslabError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"experiment.beside: {summary.get('model')}'s run has no config this version reads "
                          f"({str(e) or type(e).__name__})") from None
    flat: dict[str, Any] = {}
    for section, values in tree.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[section] = values
    if summary.get("precision"):
        flat["train.precision"] = summary["precision"]
    return {k: v for k, v in flat.items() if not k.startswith(NOT_SETTINGS)}


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    a, b = settings(ours), settings(theirs)
    return [f"{k}: {b.get(k, '-')} there, {a.get(k, '-')} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def set_beside(table: list[dict], ours: dict[str, dict[str, Any]], path: str) -> tuple[dict, list[str]]:
    """Add the other record's error and the difference to each row of ``table`` (in place); returns the record's
    part and the verdict's line. ``ours``: this experiment's summaries, by model."""
    theirs = finished_runs(path)
    pairs, differ = [], []
    for row in table:
        other = theirs.get(row["model"])
        row["val error % beside"] = pct(other["final"]["val_error"]) if other else None
        row["difference"] = None
        if other and row.get("final val error %") is not None:
            row["difference"] = round(row["final val error %"] - row["val error % beside"], 2)
            pairs.append((row["model"], row["difference"]))
            differ += [d for d in differences(ours[row["model"]], other) if d not in differ]
    record: dict[str, Any] = {"folder": path, "differs": differ, "pairs": dict(pairs)}
    if not pairs:
        return record, f"Beside {path}: none of its runs trained these networks; nothing to compare."
    what = f"differs in {'; '.join(differ)}" if differ else "the same settings; code and random draws may differ"
    mean, sd = mean_sd([d for _, d in pairs])
    line = (f"Beside {path} ({what}): validation error here minus there, "
            f"{', '.join(f'{m} {d:+.2f}' for m, d in pairs)} points")
    record["mean"] = round(mean, 2)
    if len(pairs) > 1:
        se = sd / len(pairs) ** 0.5
        test = t_test(mean, se, len(pairs) - 1)
        record.update(se=round(se, 2), df=len(pairs) - 1, ci95=round(test["ci95"], 2), p=float(f"{test['p']:.3g}"))
        line += (f"; mean {mean:+.2f} +- {test['ci95']:.2f} (95%, t on {len(pairs) - 1} df over the networks, "
                 f"one run each side), p = {test['p']:.2g}.")
    else:
        line += ": one network, one run each side, no spread to judge it by."
    return record, line
