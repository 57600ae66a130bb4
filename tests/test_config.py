import tomllib

import pytest

from reslab.config import RunConfig, config_from_dict, load_config, parse_override
from reslab.rundir.files import dump_toml
from reslab.errors import ConfigError

BASE = ["--train.epochs=1"]


def test_defaults_and_overrides_are_typed():
    cfg = load_config(None, BASE + ["--optim.lr=0.05", "--data.batch_size=64", "--schedule.milestones=[10, 20]",
                                    "--model.options={shortcut = 'B'}", "--train.compile=true", "--optim.name=adam"])
    assert cfg.optim.lr == 0.05 and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 64
    assert cfg.schedule.milestones == (10, 20)
    assert cfg.model.options == {"shortcut": "B"}
    assert cfg.train.compile is True
    assert cfg.optim.name == "adam"


def test_integer_given_for_float_is_accepted_and_string_numbers_parse():
    cfg = load_config(None, BASE + ["--optim.lr=1", "--train.steps=0"])
    assert cfg.optim.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("--optim.lr=-0.1", "optim.lr must be positive"),
    ("--data.batch_size=0", "data.batch_size must be positive"),
    ("--optim.lrr=0.1", "unknown config key 'optim.lrr'"),
    ("--nosuch.key=1", "unknown config key 'nosuch'"),
    ("--train.epochs=many", "train.epochs: expected int"),
    ("--train.precision=fp8", "train.precision must be one of"),
    ("--train.label_smoothing=1.5", "between 0 and 1"),
    ("--optim.lr=nan", "finite"),
    ("--optim.betas=[0.9, 1.0]", "optim.betas"),
    ("optim.lr", "must look like"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, BASE + [override])


def test_steps_or_epochs_required():
    with pytest.raises(ConfigError, match="train.steps or train.epochs"):
        load_config(None, [])
    with pytest.raises(ConfigError, match=r"only one of train.steps \(5\) and train.epochs \(2\); to override one, "
                                          r"set the other to 0 \(e.g. --train.steps=500 --train.epochs=0\)"):
        load_config(None, ["--train.steps=5", "--train.epochs=2"])
    assert load_config(None, ["--train.steps=5", "--train.epochs=2", "--train.epochs=0"]).train.steps == 5


def test_toml_round_trip(tmp_path):
    cfg = load_config(None, BASE + ["--model.options={survival_prob = 0.5, shortcut = 'A'}", "--name=x1"])
    text = dump_toml(cfg)
    assert config_from_dict(tomllib.loads(text)) == cfg
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path) == cfg


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_repository_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("configs/*.toml")):
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig)


def test_parse_override_reads_toml_values_else_strings():
    assert parse_override("--a.b=3") == ("a.b", 3)
    assert parse_override("--a.b=hello") == ("a.b", "hello")
    assert parse_override("--a.b=[1,2]") == ("a.b", [1, 2])
