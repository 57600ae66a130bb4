"""Another record's runs set beside the depth experiment's: which settings differ, and the paired differences
of validation error with their t interval over the networks (hand-made summaries, exact values)."""

import json

import pytest

from reslab.config import RunConfig, as_dict
from reslab.errors import ConfigError
from reslab.experiments.beside import differences, finished_runs, set_beside


def summary(model: str, val_error: float, precision: str = "fp32", **train) -> dict:
    config = as_dict(RunConfig())
    config["model"]["name"] = model
    config["train"].update({"precision": "auto", "epochs": 30, **train})
    config["experiment"] = {"plain": True}
    return {"model": model, "precision": precision, "final": {"val_error": val_error}, "config": config}


def write_runs(folder, summaries) -> str:
    for s in summaries:
        (folder / s["model"]).mkdir(parents=True)
        (folder / s["model"] / "summary.json").write_text(json.dumps(s))
    return str(folder)


def test_the_settings_that_differ_read_the_resolved_precision_and_ignore_names_and_experiment_options():
    ours, theirs = summary("resnet20", 0.15), summary("resnet20", 0.14, "bf16")
    theirs["config"]["name"], theirs["config"]["experiment"] = "elsewhere", {"models": ["resnet20"]}
    assert differences(ours, theirs) == ["train.precision: bf16 there, fp32 here"]
    # a run written before a setting existed ran with its default: the same setting, not a difference
    del theirs["config"]["train"]["label_smoothing"]
    assert differences(ours, theirs) == ["train.precision: bf16 there, fp32 here"]
    assert differences(summary("resnet20", 0.15, epochs=3), theirs) == [
        "train.epochs: 30 there, 3 here", "train.precision: bf16 there, fp32 here"]


def test_paired_differences_with_a_t_interval_over_the_networks(tmp_path):
    there = write_runs(tmp_path / "bf16" / "runs", [summary("plain20", 0.1642, "bf16"), summary("resnet20", 0.1468, "bf16"),
                                                    summary("resnet56", 0.1350, "bf16")])
    ours = {"plain20": summary("plain20", 0.17), "resnet20": summary("resnet20", 0.15),
            "resnet32": summary("resnet32", 0.14), "resnet56": summary("resnet56", 0.131)}
    table = [{"model": m, "final val error %": round(100 * s["final"]["val_error"], 2)} for m, s in ours.items()]
    record, line = set_beside(table, ours, str(tmp_path / "bf16"))  # finds the runs in its runs/ folder
    diffs = [0.58, 0.32, -0.4]
    assert [r["difference"] for r in table] == [0.58, 0.32, None, -0.4]
    assert [r["val error % beside"] for r in table] == [16.42, 14.68, None, 13.5]
    mean = sum(diffs) / 3
    sd = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    assert record["mean"] == round(mean, 2) and record["se"] == round(sd / 3 ** 0.5, 2) and record["df"] == 2
    assert record["ci95"] == round(4.302653 * sd / 3 ** 0.5, 2)  # Student's t, 2 df, 97.5%
    assert record["differs"] == ["train.precision: bf16 there, fp32 here"]
    assert line.startswith(f"Beside {tmp_path / 'bf16'} (differs in train.precision: bf16 there, fp32 here): "
                           "validation error here minus there, plain20 +0.58, resnet20 +0.32, resnet56 -0.40 points; "
                           "mean +0.17 +- ")
    one = [{"model": "resnet20", "final val error %": 15.0}]
    assert set_beside(one, ours, there)[1].endswith("resnet20 +0.32 points: one network, one run each side, no "
                                                    "spread to judge it by.")
    none = [{"model": "resnet32", "final val error %": 14.0}]
    assert "none of its runs trained these networks" in set_beside(none, ours, there)[1]


def test_a_folder_without_finished_runs_or_with_a_broken_summary_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        finished_runs(str(tmp_path / "nope"))
    (tmp_path / "empty" / "resnet20").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no finished run with a validation error under"):
        finished_runs(str(tmp_path / "empty"))
    (tmp_path / "empty" / "resnet20" / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"^experiment.beside: .*summary.json is not valid JSON"):
        finished_runs(str(tmp_path / "empty"))
