import math

import pytest

from reslab.config import ScheduleConfig
from reslab.schedules import (LRController, build_schedule, constant, cosine, exponential, multistep, onecycle,
                              step_decay, with_warmup)


def test_multistep_boundaries_are_the_papers():
    lr = lambda s: multistep(s, base_lr=0.1, milestones=(32000, 48000))
    assert lr(0) == 0.1 and lr(31999) == 0.1
    assert lr(32000) == pytest.approx(0.01) and lr(47999) == pytest.approx(0.01)
    assert lr(48000) == pytest.approx(0.001) and lr(63999) == pytest.approx(0.001)


def test_step_and_exponential():
    assert step_decay(9, base_lr=1.0, step_size=10, gamma=0.5) == 1.0
    assert step_decay(10, base_lr=1.0, step_size=10, gamma=0.5) == 0.5
    assert exponential(3, base_lr=2.0, gamma=0.5) == 0.25
    assert constant(1234, base_lr=0.3) == 0.3


def test_cosine_boundaries():
    assert cosine(0, base_lr=1.0, total_steps=100) == 1.0
    assert cosine(50, base_lr=1.0, total_steps=100) == pytest.approx(0.5)
    assert cosine(100, base_lr=1.0, total_steps=100, min_lr=0.1) == pytest.approx(0.1)
    assert cosine(500, base_lr=1.0, total_steps=100) == pytest.approx(0.0)


def test_onecycle_boundaries():
    f = lambda s: onecycle(s, base_lr=1.0, total_steps=100, pct_start=0.25)
    assert f(0) == pytest.approx(1 / 25)
    assert f(25) == pytest.approx(1.0)
    assert f(100) == pytest.approx(0.0)
    assert max(f(s) for s in range(101)) == pytest.approx(1.0)


def test_warmup_is_linear_then_the_schedule():
    sched = lambda s: multistep(s, base_lr=0.1, milestones=(100,))
    f = lambda s: with_warmup(sched, s, warmup_steps=10, warmup_lr=0.0)
    assert f(0) == 0.0 and f(5) == pytest.approx(0.05) and f(10) == 0.1 and f(100) == pytest.approx(0.01)


def test_error_gated_warmup_of_resnet110():
    cfg = ScheduleConfig(name="multistep", milestones=(32000, 48000), warmup_until_error=0.8, warmup_lr=0.01)
    ctl = build_schedule(cfg, base_lr=0.1, total_steps=64000)
    assert ctl.lr(0) == 0.01 and ctl.lr(300) == 0.01
    ctl.observe_train_error(0.85)
    assert ctl.lr(350) == 0.01
    ctl.observe_train_error(0.79)
    assert ctl.lr(400) == 0.1
    state = ctl.state_dict()
    fresh = build_schedule(cfg, base_lr=0.1, total_steps=64000)
    fresh.load_state_dict(state)
    assert fresh.lr(400) == 0.1


def test_plateau_drops_after_patience_and_checkpoints():
    ctl = build_schedule(ScheduleConfig(name="plateau", patience=2, factor=0.5), base_lr=1.0, total_steps=10)
    for loss in (1.0, 0.9, 0.95, 0.95):
        ctl.observe_val_loss(loss)
    assert ctl.lr(0) == 1.0
    ctl.observe_val_loss(0.95)  # third evaluation without improvement
    assert ctl.lr(0) == 0.5
    other = build_schedule(ScheduleConfig(name="plateau", patience=2, factor=0.5), base_lr=1.0, total_steps=10)
    other.load_state_dict(ctl.state_dict())
    assert other.lr(0) == 0.5 and other.best == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["constant", "step", "multistep", "exponential", "cosine", "onecycle", "plateau"])
def test_every_schedule_builds_and_is_finite(name):
    cfg = ScheduleConfig(name=name, milestones=(5,), gamma=0.9, warmup_steps=3, warmup_lr=0.001)
    ctl = build_schedule(cfg, base_lr=0.1, total_steps=20)
    values = [ctl.lr(s) for s in range(25)]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert values[0] == pytest.approx(0.001)
