"""reslab export: safetensors + config.json that rebuild the network bit for bit; ONNX that onnxruntime
runs to within 1e-4 of PyTorch at batch 1 and 3; mismatched architectures refused in one line."""

import json

import pytest
import torch

from reslab.checkpoint import load_checkpoint, save_checkpoint
from reslab.cli import main
from reslab.models import create_model
from reslab.workflows.restore import model_from_checkpoint


@pytest.fixture
def trained(tmp_path, image_folder, train_args):
    """A resnet20 run of 6 steps on an 8x8 image folder, with an EMA of its weights (what evaluation uses)."""
    assert main(train_args(tmp_path, image_folder, "--train.steps=6", "--train.ema_decay=0.9")) == 0
    return tmp_path / "runs" / "t"


def test_safetensors_round_trip_is_bit_exact_and_config_json_rebuilds_the_network(trained, tmp_path, capsys):
    from safetensors.torch import load_file

    capsys.readouterr()
    assert main(["export", str(trained), "--format", "safetensors", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    folder = trained / "export" / "safetensors"
    assert report["folder"] == str(folder) and sorted(p.name for p in folder.iterdir()) == ["config.json",
                                                                                            "model.safetensors"]
    state = load_checkpoint(trained / "checkpoints" / "best.pt")  # its "model": the weights evaluated (EMA)
    saved = load_file(str(folder / "model.safetensors"))
    assert saved.keys() == state["model"].keys()
    assert all(torch.equal(saved[k], state["model"][k]) for k in saved)
    # the last checkpoint holds the trained weights and their EMA: the EMA's are exported
    assert main(["export", str(trained / "checkpoints" / "last.pt"), "--format", "safetensors", "--out",
                 str(tmp_path / "last")]) == 0
    last, from_last = load_checkpoint(trained / "checkpoints" / "last.pt"), load_file(str(tmp_path / "last" /
                                                                                           "model.safetensors"))
    assert all(torch.equal(from_last[k], last["ema"][k]) for k in from_last)
    assert not all(torch.equal(from_last[k], last["model"][k]) for k in from_last)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet20" and config["num_classes"] == 4
    assert config["input_size"] == [3, 8, 8] and config["label_names"] == ["ant", "bee", "cat", "dog"]
    assert config["mean"] == state["data_stats"]["mean"] and config["library"] == "reslab"

    rebuilt = create_model("resnet20", weights=folder)
    original = model_from_checkpoint(state, trained)
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x)) and not rebuilt.training


def test_weights_of_another_architecture_are_refused_in_one_line(trained, tmp_path, capsys):
    from reslab.errors import CheckpointError

    assert main(["export", str(trained), "--format", "safetensors", "--out", str(tmp_path / "w")]) == 0
    with pytest.raises(CheckpointError, match="holds a resnet20 network, not resnet32"):
        create_model("resnet32", weights=tmp_path / "w")
    with pytest.raises(CheckpointError, match="4-class resnet20, not 10 classes"):
        create_model("resnet20", weights=tmp_path / "w", num_classes=10)
    # a checkpoint whose weights do not fit the architecture it names: refused before anything is written
    state = load_checkpoint(trained / "checkpoints" / "best.pt")
    state["model_name"] = "resnet32"
    save_checkpoint(tmp_path / "forged.pt", state)
    capsys.readouterr()
    for fmt in ("safetensors", "onnx"):
        assert main(["export", str(tmp_path / "forged.pt"), "--format", fmt, "--out", str(tmp_path / fmt)]) == 2
        err = capsys.readouterr().err
        assert "does not fit this model" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / fmt).exists()


@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_onnx_matches_pytorch_in_onnxruntime_at_batch_1_and_3(name, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'reslab[onnx]')")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install 'reslab[onnx]')")
    import numpy as np
    import onnx
    import onnxruntime

    from reslab.workflows.export import export_checkpoint

    torch.manual_seed(1)
    model = create_model(name, num_classes=7)
    for m in model.modules():  # trained-looking BatchNorm statistics, so eval mode is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    size = 32 if name == "resnet20" else 64
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "model_name": name, "num_classes": 7,
                                        "model_options": {}, "image_size": size,
                                        "data_stats": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    report = export_checkpoint(tmp_path / "m.pt", "onnx", tmp_path / "onnx")
    assert set(report["max_relative_error"]) == {"1", "3"}
    assert all(e <= 1e-4 for e in report["max_relative_error"].values())
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 18
    # and independently of the exporter's own check: a batch of 3 run here
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == (3, 7) and np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["onnx_opset"] == 18


def test_a_corrupt_or_mismatched_weights_folder_is_one_line(tmp_path):
    from reslab.errors import CheckpointError
    from reslab.models.weights import save_weights, weights_config

    model = create_model("resnet20")
    save_weights(model, tmp_path / "w", weights_config("resnet20", {}, 10, image_size=32))
    assert torch.equal(create_model("resnet20", weights=tmp_path / "w").fc.weight, model.fc.weight)
    (tmp_path / "w" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as caught:
        create_model("resnet20", weights=tmp_path / "w")
    assert "\n" not in str(caught.value)
    (tmp_path / "w" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a reslab weights config"):
        create_model("resnet20", weights=tmp_path / "w")
    save_weights(create_model("resnet32"), tmp_path / "v", weights_config("resnet20", {}, 10, image_size=32))
    with pytest.raises(CheckpointError, match=r"does not fit resnet20: 0 missing \(\), 72 unexpected \(layer1.3.bn1.bias"):
        create_model("resnet20", weights=tmp_path / "v")  # a config.json that lies about the weights
