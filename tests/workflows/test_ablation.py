"""The ablation experiment: arms that each change one thing, seeds per arm, effects with their
uncertainty, the JPEG-quality figure; the statistics checked on exact numbers."""

import json
import math

import pytest

from reslab.config import load_config
from reslab.errors import ConfigError
from reslab.experiments import run_experiment
from reslab.experiments.ablation import arm_config, summarise, verdict


def test_effects_standard_errors_and_detectable_size_on_exact_numbers():
    table = summarise({"base": {"val": [10.0, 12.0], "train": [1.0, 1.0]},
                       "decay-bn": {"val": [8.0, 9.0], "train": [1.0, 2.0]}})
    base, arm = table
    assert base["val error %"] == 11.0 and base["val sd"] == round(math.sqrt(2), 2) and base["effect on val error"] is None
    assert arm["effect on val error"] == -2.5 and arm["effect se"] == round(math.sqrt(2 / 2 + 0.5 / 2), 2)
    assert arm["smallest detectable"] == round(2.8 * math.sqrt((0.5 + 2) / 2) * math.sqrt(2 / 2), 2)
    assert verdict(table) == ["decay-bn: lowers the validation error (-2.50 +- 1.12 points; 2 seeds, smallest "
                              "detectable 3.13)."]


def test_each_arm_changes_one_thing_from_the_base():
    base = load_config(None, ["--train.steps=10", "--train.precision=fp32"])
    assert arm_config(base, "bf16", 1, "out").train.precision == "bf16"
    cfg = arm_config(base, "ghost-bn-64", 2, "out")
    assert cfg.train.accumulate == 2 and cfg.train.seed == 2 and cfg.name == "ghost-bn-64-s2" and cfg.out_dir == "out"
    assert arm_config(base, "pixel-mean", 0, "o").data.normalize == "pixel"
    assert arm_config(base, "base", 0, "o").data == base.data
    with pytest.raises(ConfigError, match="unknown ablation arm"):
        run_experiment("ablation", load_config(None, ["--train.steps=1", '--experiment.arms=["base", "bf8"]']), "x")


def test_a_small_ablation_runs_every_arm_and_seed_and_reports(tmp_path):
    cfg = load_config(None, ['--experiment.arms=["base", "jpeg-50", "jpeg-30"]', "--experiment.seeds=2",
                             "--train.steps=2", "--train.eval_every=2", "--train.log_every=1", "--train.precision=fp32",
                             "--data.dataset=sample", "--data.limit=128", "--data.val_size=64", "--data.batch_size=32",
                             f"--data.cache_dir=\"{tmp_path / 'cache'}\""])
    exp = run_experiment("ablation", cfg, tmp_path / "a")
    assert [r["arm"] for r in exp["table"]] == ["base", "jpeg-50", "jpeg-30"]
    assert all(r["seeds"] == 2 for r in exp["table"]) and len(exp["runs"]) == 6
    assert [p["quality"] for p in exp["jpeg"]] == [75, 50, 30]
    summary = json.loads((tmp_path / "a" / "runs" / "jpeg-30-s1" / "summary.json").read_text())
    assert "re-encoded as JPEG q30" in summary["dataset"]
    report = (tmp_path / "a" / "report.html").read_text()
    assert 'id="fig-jpeg_quality"' in report and "smallest detectable" in report
