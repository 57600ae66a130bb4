"""The training loop on a tiny model: it learns, resumes bit for bit, stops cleanly on NaN."""

import json
import math

import pytest
import torch
from torch import nn

from reslab.data.arrays import ArrayDataset
from reslab.data.loader import BatchLoader
from reslab.errors import CheckpointError
from reslab.models.googlenet import AuxOutputs
from reslab.models.resnet import BasicBlock, ResNet
from reslab.schedules import LRController, multistep
from reslab.train import (Callback, Checkpointer, EarlyStopping, GradientRecorder, MetricsLogger, TensorBoardLogger, Trainer,
                          TrainingDiverged, classification_loss)
from reslab.checkpoint import load_checkpoint, save_checkpoint
from reslab.checkpoint import load_model_state
from functools import partial


def make_dataset(n=96, size=8, seed=0):
    """Two classes told apart by brightness of the left half: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[labels == 1, :, :, : size // 2] += 120
    return ArrayDataset(images, labels.long(), ["dark", "bright"])


def make_loader(ds, *, seed=0, augment=True, shuffle=True, batch_size=16):
    return BatchLoader(ds, batch_size=batch_size, shuffle=shuffle, augment=augment, mean=(0.5, 0.5, 0.5),
                       std=(0.25, 0.25, 0.25), seed=seed, drop_last=shuffle, channels_last=False)


def make_trainer(callbacks=(), *, lr=0.05, survival_prob=0.7, seed=0, **kw):
    torch.manual_seed(seed)
    model = ResNet(BasicBlock, [1, 1, 1], (4, 8, 8), num_classes=2, survival_prob=survival_prob)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    ctl = LRController(partial(multistep, base_lr=lr, milestones=(9,)))
    return Trainer(model, opt, ctl, device=torch.device("cpu"), precision="fp32", log_every=2,
                   callbacks=list(callbacks), **kw)


def test_loop_learns_a_tiny_problem():
    ds = make_dataset()
    trainer = make_trainer(survival_prob=1.0, lr=0.1)
    before = trainer.evaluate(make_loader(ds, shuffle=False, augment=False))
    metrics = trainer.fit(make_loader(ds, augment=False), make_loader(ds, shuffle=False, augment=False), total_steps=40)
    assert metrics["val_error"] < 0.1 < before.error + 0.2
    assert metrics["val_loss"] < before.loss
    assert trainer.step == 40


class Kill(Callback):
    def __init__(self, at):
        self.at = at

    def on_batch_end(self, trainer, metrics):
        if trainer.step == self.at:
            raise KeyboardInterrupt


def test_kill_and_resume_is_bit_exact_in_fp32(tmp_path):
    """Momentum, stochastic depth (global RNG), augmentation and a mid-epoch checkpoint all resume exactly."""
    ds = make_dataset()
    total = 17  # 6 batches an epoch: the checkpoint at step 8 lies mid-epoch

    reference = make_trainer([Checkpointer(tmp_path / "a" / "last.pt", tmp_path / "a" / "best.pt", every=4)])
    reference.fit(make_loader(ds), None, total_steps=total)

    killed = make_trainer([Checkpointer(tmp_path / "b" / "last.pt", tmp_path / "b" / "best.pt", every=4), Kill(at=10)])
    with pytest.raises(KeyboardInterrupt):
        killed.fit(make_loader(ds), None, total_steps=total)
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert state["step"] == 8 and state["train_loader"]["position"] == 2

    resumed = make_trainer([Checkpointer(tmp_path / "b" / "last.pt", tmp_path / "b" / "best.pt", every=4)], seed=123)  # different init, overwritten
    loader = make_loader(ds)
    resumed.load_state_dict(state, train_loader=loader)
    resumed.fit(loader, None, total_steps=total)
    assert resumed.step == total
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(reference.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


class NaNAfter(nn.Module):
    def __init__(self, inner, at):
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        return out * math.nan if self.calls >= self.at and self.training else out


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    ds = make_dataset()
    ckpt = Checkpointer(tmp_path / "last.pt", tmp_path / "best.pt", every=3)
    trainer = make_trainer([ckpt])
    trainer.model = NaNAfter(trainer.model, at=5)
    trainer.train_model = trainer.model
    with pytest.raises(TrainingDiverged, match="at step 5"):
        trainer.fit(make_loader(ds), None, total_steps=20)
    good = load_checkpoint(tmp_path / "last.pt")
    assert good["step"] == 3
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_early_stopping_restores_best_weights():
    ds = make_dataset()
    stopper = EarlyStopping(patience=2, monitor="val_loss")
    trainer = make_trainer([stopper], lr=2.0, survival_prob=1.0)  # too large a rate: the loss wanders
    val = make_loader(ds, shuffle=False, augment=False)
    trainer.fit(make_loader(ds), val, total_steps=200, eval_every=2)
    assert trainer.stop_reason is not None and trainer.step < 200
    assert stopper.stopped_step == trainer.step
    final = trainer.evaluate(val)
    assert final.loss == pytest.approx(stopper.best, rel=1e-5)


def read_events(folder):
    """Scalars, texts and plugins of a TensorBoard run, read back by TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_metrics_and_tensorboard_logs(tmp_path):
    ds = make_dataset()
    config = {"model": {"name": "resnet8", "options": {"survival_prob": 1.0}}, "optim": {"lr": 0.05}}
    board = TensorBoardLogger(tmp_path / "tb", config=config, config_text='[optim]\nlr = 0.05',
                              model=None)
    trainer = make_trainer([MetricsLogger(tmp_path / "metrics.jsonl"), board])
    trainer.fit(make_loader(ds), make_loader(ds, shuffle=False, augment=False), total_steps=12)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train_rows] == list(range(2, 13, 2))
    assert {"step", "epoch", "lr", "train_loss", "train_error", "images_per_sec"} <= set(train_rows[0])
    assert [r["step"] for r in eval_rows] == [6, 12]  # end of each 6-batch epoch
    assert {"val_loss", "val_error"} <= set(eval_rows[-1])
    assert train_rows[-1]["lr"] == pytest.approx(0.005)  # after the milestone at step 9
    assert [p.name for p in (tmp_path / "tb").iterdir()][0].startswith("events.out.tfevents.")
    assert len(list((tmp_path / "tb").iterdir())) == 1  # hyper-parameters too: one run, no sub-run folder
    acc = read_events(tmp_path / "tb")
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/error", "optim/lr", "speed/images_per_sec", "val/loss", "val/error"} <= scalars
    for key, tag in (("val_loss", "val/loss"), ("val_error", "val/error")):
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [r["step"] for r in eval_rows]
        assert [e.value for e in got] == pytest.approx([r[key] for r in eval_rows], rel=1e-6)
    for key, tag in (("train_loss", "train/loss"), ("lr", "optim/lr")):
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [r["step"] for r in train_rows]
        assert [e.value for e in got] == pytest.approx([r[key] for r in train_rows], rel=1e-6)
    assert [e.value for e in acc.Scalars("hparams/val_error")] == pytest.approx([eval_rows[-1]["val_error"]])
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.lr"].number_value == 0.05 and start.hparams["model.name"].string_value == "resnet8"
    assert start.hparams["model.options"].string_value == "{'survival_prob': 1.0}"
    assert "lr = 0.05" in acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()


def test_tensorboard_gradient_norms_and_a_resumed_run_purge_the_steps_after_its_checkpoint(tmp_path):
    ds = make_dataset()
    trainer = make_trainer([])
    trainer.callbacks += [TensorBoardLogger(tmp_path / "tb", model=trainer.model),
                          GradientRecorder(tmp_path / "g.jsonl", trainer.model)]
    trainer.fit(make_loader(ds), make_loader(ds, shuffle=False, augment=False), total_steps=12)
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    acc = read_events(tmp_path / "tb")
    recorded = [(layer, norm) for layer, norm in zip(rows[-1]["layers"], rows[-1]["weight_grad_norm"]) if norm]
    assert len(recorded) > 3
    for layer, norm in recorded:  # the layers with a gradient in the last step (stochastic depth drops some)
        assert acc.Scalars(f"grad_norm/{layer}")[-1].value == pytest.approx(norm, rel=1e-6)
    # a second session resumed from step 6 rewrites steps 8-12: TensorBoard keeps its values only
    again = make_trainer([], lr=0.3)
    again.step = 6
    again.callbacks.append(TensorBoardLogger(tmp_path / "tb"))
    again.fit(make_loader(ds), None, total_steps=12)
    lr = read_events(tmp_path / "tb").Scalars("optim/lr")
    assert [e.step for e in lr] == [2, 4, 6, 8, 10, 12]
    assert [e.value for e in lr] == pytest.approx([0.05, 0.05, 0.05, 0.3, 0.03, 0.03])  # the second session's


def test_metrics_logger_drops_rows_after_the_resumed_step(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": s, "kind": "train"}) + "\n" for s in (2, 4, 6, 8)))
    trainer = make_trainer()
    trainer.step = 4
    MetricsLogger(path).on_fit_start(trainer)
    assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [2, 4]


def test_gradient_recorder_logs_the_gradients_the_optimizer_used(tmp_path):
    ds = make_dataset()
    seen = {}

    class Grab(Callback):  # the norms of the last step's gradients, taken independently
        def on_batch_end(self, trainer, metrics):
            seen[trainer.step] = [None if m.weight.grad is None else float(m.weight.grad.norm())
                                  for m in trainer.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    trainer = make_trainer([Grab()], survival_prob=0.5)
    trainer.callbacks.append(GradientRecorder(tmp_path / "g.jsonl", trainer.model))
    trainer.fit(make_loader(ds), make_loader(ds, shuffle=False, augment=False), total_steps=12)
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [6, 12]
    n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in trainer.model.modules())
    for r in rows:
        assert len(r["layers"]) == len(r["weight_grad_norm"]) == n_layers
        assert r["layers"][0] == "conv1" and r["layers"][-1] == "fc"
        got, want = r["weight_grad_norm"], seen[r["step"]]
        assert [v is None for v in got] == [v is None for v in want]  # blocks dropped in that step
        assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-6)
    # on resume the rows after the checkpoint's step go
    trainer.step = 6
    GradientRecorder(tmp_path / "g.jsonl", trainer.model).on_fit_start(trainer)
    assert [json.loads(l)["step"] for l in (tmp_path / "g.jsonl").read_text().splitlines()] == [6]


def test_aux_losses_weighted():
    y = torch.tensor([0, 1])
    main, a1, a2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    loss, logits = classification_loss(AuxOutputs(main, (a1, a2), 0.3), y)
    ce = nn.functional.cross_entropy
    assert loss.item() == pytest.approx((ce(main, y) + 0.3 * ce(a1, y) + 0.3 * ce(a2, y)).item())
    assert logits is main


def test_grad_clip_and_ema_and_tta_run():
    ds = make_dataset()
    trainer = make_trainer(grad_clip=0.5, ema_decay=0.9, tta_flip=True)
    m = trainer.fit(make_loader(ds), make_loader(ds, shuffle=False, augment=False), total_steps=6)
    assert math.isfinite(m["val_loss"])
    ema = trainer.ema.model.state_dict()
    live = trainer.model.state_dict()
    assert not torch.equal(ema["fc.weight"], live["fc.weight"])


def test_ema_warms_up_then_follows_the_decay():
    from reslab.train.state import ModelEMA

    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ModelEMA(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.999, 2/11): the average moves 9/11 of the way at once
    assert ema.model.weight.item() == pytest.approx(9 / 11)
    for _ in range(5000):
        ema.update(model)
    assert ema.model.weight.item() == pytest.approx(1.0, abs=1e-3)
    assert (1 + ema.updates) / (10 + ema.updates) > 0.998


def test_ema_averages_batchnorm_statistics_too():
    from reslab.train.state import ModelEMA

    model = nn.BatchNorm2d(2)
    ema = ModelEMA(model, 0.5)
    ema.updates = 10**6  # past the warm-up: decay 0.5
    with torch.no_grad():
        model.running_mean.fill_(4.0)
    ema.update(model)
    assert ema.model.running_mean.tolist() == [2.0, 2.0]  # halfway, not copied


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "step": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "bad": Boom()})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_corrupt_foreign_and_code_carrying_checkpoints_are_refused(tmp_path):
    truncated = tmp_path / "t.pt"
    save_checkpoint(truncated, {"model": {"w": torch.ones(100)}})
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(truncated)

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": EvilPayload()}, evil)
    refusal = "cannot read checkpoint .*asks to import and call print; reslab .* never runs code"
    with pytest.raises(CheckpointError, match=refusal) as refused:
        load_checkpoint(evil)
    assert "weights_only" not in str(refused.value) and "\n" not in str(refused.value)  # no advice to run it anyway

    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 4)  # neither a zip archive nor a pickle
    with pytest.raises(CheckpointError, match="not a PyTorch file, or a damaged one") as refused:
        load_checkpoint(noise)
    assert "weights_only" not in str(refused.value)

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")

    other = make_trainer().model
    state = {"model": nn.Linear(3, 2).state_dict(), "model_name": "linear"}
    with pytest.raises(CheckpointError, match="holds a linear model, not resnet20"):
        load_model_state(other, state, source="x.pt", model_name="resnet20")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_model_state(other, {"model": nn.Linear(3, 2).state_dict()}, source="x.pt")


class EvilPayload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_training_steps_read_nothing_back_between_log_steps(monkeypatch):
    """A GPU stalls at every value read back to the host; the loop reads only every log_every steps.
    Counted with patched Tensor.item/__bool__/tolist over the steps between two reads: zero."""
    from reslab.models import create_model
    from reslab.optim import create_optimizer

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=2)
    opt = create_optimizer("momentum", model.parameters(), lr=0.05)  # reslab's default optimizer path
    ctl = LRController(partial(multistep, base_lr=0.05, milestones=(100,)))
    reads = []

    class Watch(Callback):
        state_key = "watch"

        def on_batch_end(self, trainer, metrics):
            reads.append((trainer.step, calls["n"]))

    trainer = Trainer(model, opt, ctl, device=torch.device("cpu"), precision="fp32", log_every=10, callbacks=[Watch()])
    calls = {"n": 0}
    for name in ("item", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **k):
            calls["n"] += 1
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    loader = make_loader(make_dataset(n=400), batch_size=16)
    trainer.fit(loader, None, total_steps=20, eval_every=1000)
    by_step = dict(reads)
    assert by_step[19] - by_step[11] == 0  # steps 12..19: no read at all
    assert by_step[10] - by_step[9] >= 1  # the window's read at step 10 is counted: the probe works


def test_metric_window_grows_instead_of_allocating_log_every_slots():
    """A huge log_every (10**9 silences the log) must not allocate 4 GB up front; the sums stay exact."""
    from reslab.train.window import MetricWindow

    window = MetricWindow(torch.device("cpu"), 10**9)
    assert window._losses.numel() <= 1024
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])  # predicts 0, then 1
    for step in range(1, 3001):  # past the first allocation: it grows
        window.record(step, torch.tensor(float(step)), logits, torch.tensor([0, 0]))
    window.read()
    assert window.seen == 6000 and window.errors == 3000
    assert window.loss == 2 * sum(range(1, 3001))  # each step's mean loss x its 2 images
