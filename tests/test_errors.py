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


def test_an_output_path_the_file_system_refuses_is_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    assert main(["playground", "--html", str(tmp_path)]) == 2  # a folder where the page should go
    err = capsys.readouterr().err
    assert err.startswith(f"reslab: error: {tmp_path}: Is a directory") and len(err.strip().splitlines()) == 1
    assert main(["playground", "--html", str(tmp_path / "a-file" / "p.html")]) == 2
    err = capsys.readouterr().err
    assert "a-file: File exists" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_files_of_the_wrong_shape_are_refused_under_python_O(tmp_path):
    """Input checks are code, not ``assert`` statements: ``python -O`` strips those, and a malformed
    weights config or shard index would then pass as good (and fail later, with a traceback)."""
    import json
    import subprocess
    import sys

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"")
    (tmp_path / "w" / "config.json").write_text(json.dumps({"architecture": 20, "num_classes": 10}))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "index.json").write_text(json.dumps({"classes": "abc", "shards": []}))
    script = (
        "import sys\n"
        "from reslab.errors import CheckpointError, DataError\n"
        "from reslab.models.weights import read_weights_config\n"
        "from reslab.data.shards import read_index\n"
        "for call, error in ((lambda: read_weights_config(sys.argv[1]), CheckpointError),\n"
        "                    (lambda: read_index(sys.argv[2]), DataError)):\n"
        "    try:\n"
        "        call()\n"
        "    except error as e:\n"
        "        print('refused:', e)\n"
        "    else:\n"
        "        print('accepted')\n")
    out = subprocess.run([sys.executable, "-O", "-c", script, str(tmp_path / "w"), str(tmp_path / "s")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split(":")[0] for line in out] == ["refused", "refused"], out
    assert "not a reslab weights config" in out[0] and "is not a shard index" in out[1]
