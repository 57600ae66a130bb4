"""Convergence on the lecture's surfaces, and the playground's pictures."""

import json

import pytest
import torch

from reslab.cli import main
from reslab.optim import create_optimizer
from reslab.playground import SURFACES, run_surface
from reslab.playground.run import run_optimizer


@pytest.mark.parametrize("name, hp, steps", [
    ("momentum", {"lr": 0.001, "momentum": 0.9}, 1500),
    ("nesterov", {"lr": 0.001, "momentum": 0.9}, 1500),
    ("adam", {"lr": 0.05}, 2000),
])
def test_converges_on_rosenbrock(name, hp, steps):
    t = run_optimizer(SURFACES["rosenbrock"], name, name, hp, steps=steps, tol=1e-6)
    assert t.steps_to_tol is not None
    assert t.points[-1] == pytest.approx((1.0, 1.0), abs=1e-2)


@pytest.mark.parametrize("name, hp", [
    ("sgd", {"lr": 0.045}), ("momentum", {"lr": 0.005}), ("nesterov", {"lr": 0.005}), ("adagrad", {"lr": 0.5}),
    ("adam", {"lr": 0.1}), ("adamw", {"lr": 0.1, "weight_decay": 0.0}),
])
def test_converges_on_the_quadratic(name, hp):
    t = run_optimizer(SURFACES["ravine"], name, name, hp, steps=400, tol=1e-8)
    assert t.steps_to_tol is not None and abs(t.losses[-1]) < 1e-8


def test_playground_shows_the_lectures_points():
    ravine = {t.label: t for t in run_surface("ravine")}
    assert ravine["GD eta=0.005"].steps_to_tol is None  # too small: still crawling
    assert ravine["momentum eta=0.005"].steps_to_tol is not None  # same rate, momentum arrives
    ys = [p[1] for p in ravine["GD eta=0.048"].points[:20]]
    assert sum(a * b < 0 for a, b in zip(ys, ys[1:])) >= 15  # a large rate zig-zags across the ravine

    saddle = {t.optimizer: t for t in run_surface("saddle")}
    assert saddle["sgd"].steps_to_tol is None
    for adaptive in ("adagrad", "rmsprop", "adam"):
        assert saddle[adaptive].steps_to_tol is not None and saddle[adaptive].steps_to_tol < saddle["sgd"].losses.__len__()

    bowl = run_surface("bowl1d")
    assert [t.diverged for t in bowl] == [False, False, False, True]
    osc = [p[0] for p in bowl[2].points[:10]]
    assert all(a * b < 0 for a, b in zip(osc, osc[1:]))  # eta = 0.95 flips sign every step
    assert bowl[1].steps_to_tol == 1  # eta = 0.5 on w^2 lands on the minimum in one step


def test_playground_command_writes_pictures(tmp_path, capsys):
    out = tmp_path / "pg"
    assert main(["playground", "bowl1d", "saddle", "--out", str(out), "--steps", "40"]) == 0
    text = capsys.readouterr().out
    assert "diverged" in text and "Saddle point" in text
    for name in ("bowl1d_trajectories.png", "bowl1d_loss.svg", "saddle_trajectories.png", "saddle.gif"):
        assert (out / name).stat().st_size > 1000
    table = json.loads((out / "playground.json").read_text())
    assert set(table["surfaces"]) == {"bowl1d", "saddle"}
    assert main(["playground", "moon"]) == 2
    assert main(["playground", "bowl1d", "--lr", "sgd=-1"]) == 2
