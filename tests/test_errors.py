"""reslab's errors are also the built-in exceptions Python users catch: ValueError for a bad value,
KeyError for an unknown name, FileNotFoundError (with the file's name) for a missing file; the command
line still prints one line."""

import pytest

from reslab.checkpoint import load_checkpoint
from reslab.cli import main
from reslab.config import DataConfig, load_config
from reslab.data import build_data
from reslab.data.shards import read_index
from reslab.errors import CheckpointError, ConfigError, DataError, ReslabError
from reslab.models import create_model


def test_invalid_values_are_value_errors():
    with pytest.raises(ValueError, match="optim.lr") as caught:
        load_config(None, ["--optim.lr=-1"])
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(KeyError, match="unknown model"):  # a name never registered: a failed lookup
        create_model("resnet21")
    with pytest.raises(ValueError, match="shortcut"):
        create_model("resnet20", shortcut="Z")


@pytest.mark.parametrize("what", ["config", "checkpoint", "folder", "shards"])
def test_missing_files_are_file_not_found_errors_naming_the_file(tmp_path, what):
    missing = tmp_path / "nothing-here"
    call, kind = {
        "config": (lambda: load_config(missing), ConfigError),
        "checkpoint": (lambda: load_checkpoint(missing), CheckpointError),
        "folder": (lambda: build_data(DataConfig(dataset="folder", path=str(missing)), seed=0), DataError),
        "shards": (lambda: read_index(missing), DataError),
    }[what]
    with pytest.raises(FileNotFoundError) as caught:
        call()
    err = caught.value
    assert isinstance(err, kind) and isinstance(err, ReslabError)
    assert "nothing-here" in err.filename and str(err).count("\n") == 0 and "Errno" not in str(err)


def test_the_command_line_still_prints_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"reslab: error: config file not found: {tmp_path / 'missing.toml'}"
