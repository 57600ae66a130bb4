"""Differential tests: reslab's update rules against torch.optim, or a float64 transcription of the formula.

200 steps on a problem with several parameter tensors in two groups (different weight decay), a rate
that changes at steps 80 and 140, and gradients that depend on the parameters (a loss, not noise).
"""

import io
import math

import pytest
import torch

from reslab.errors import ConfigError
from reslab.optim import SGD, Adagrad, Adam, AdamW, Momentum, RMSprop, create_optimizer, param_groups

STEPS = 200
IMPLS = ["reference", "flat", "compiled"]


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (5,), (3, 2, 3, 3), (1,)]
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[2] = params[2].contiguous(memory_format=torch.channels_last)  # a conv weight as reslab trains it
    return [p.requires_grad_(True) for p in params]


def groups(params, wd=(1e-2, 0.0)):
    return [{"params": params[:2], "weight_decay": wd[0]}, {"params": params[2:], "weight_decay": wd[1]}]


def loss_fn(params, step):
    """A smooth non-quadratic loss whose data change every step (mini-batches)."""
    g = torch.Generator().manual_seed(1000 + step)
    total = 0.0
    for p in params:
        target = torch.randn(p.shape, generator=g, dtype=torch.float64)
        scale = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2
        total = total + (scale * (p - target) ** 2).sum() + 0.05 * (p ** 4).sum() + 0.1 * torch.sin(3 * p).sum()
    return total


def lr_at(step, base):
    return base * (1.0 if step < 80 else 0.3 if step < 140 else 0.6)


def run(make_opt, base_lr, *, steps=STEPS, params=None, resume_at=None):
    params = params if params is not None else make_params()
    opt = make_opt(groups(params))
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, base_lr)
        opt.zero_grad()
        loss_fn(params, step).backward()
        opt.step()
        if resume_at is not None and step + 1 == resume_at:
            buf = io.BytesIO()
            torch.save(opt.state_dict(), buf)
            buf.seek(0)
            state = torch.load(buf, weights_only=True)
            params = [p.detach().clone().requires_grad_(True) for p in params]
            opt = make_opt(groups(params))
            opt.load_state_dict(state)
    return [p.detach() for p in params]


def transcribe(rule, base_lr, *, state_names, wd=(1e-2, 0.0)):
    """Run ``rule(p, g, state, lr, t, wd)`` (float64, one tensor at a time, written from the formula)."""
    params = make_params()
    wds = [wd[0], wd[0], wd[1], wd[1]]
    states = [{n: torch.zeros_like(p) for n in state_names} for p in params]
    for step in range(STEPS):
        for p in params:
            p.grad = None
        loss_fn(params, step).backward()
        with torch.no_grad():
            for p, st, w in zip(params, states, wds):
                rule(p, p.grad.clone(), st, lr_at(step, base_lr), step + 1, w)
    return [p.detach() for p in params]


def assert_same(a, b, rtol=1e-6):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=1e-9)


# -- against torch.optim -----------------------------------------------------------------------------
CASES = {
    "sgd": (lambda g, impl: SGD(g, lr=0.01, impl=impl), lambda g: torch.optim.SGD(g, lr=0.01), 0.01),
    "momentum-pytorch": (lambda g, impl: Momentum(g, lr=0.01, momentum=0.9, convention="pytorch", impl=impl),
                         lambda g: torch.optim.SGD(g, lr=0.01, momentum=0.9), 0.01),
    "nesterov-pytorch": (lambda g, impl: Momentum(g, lr=0.01, momentum=0.8, nesterov=True, convention="pytorch", impl=impl),
                         lambda g: torch.optim.SGD(g, lr=0.01, momentum=0.8, nesterov=True), 0.01),
    "adagrad": (lambda g, impl: Adagrad(g, lr=0.1, impl=impl), lambda g: torch.optim.Adagrad(g, lr=0.1), 0.1),
    "rmsprop-pytorch-eps": (lambda g, impl: RMSprop(g, lr=0.01, rho=0.95, eps=1e-6, eps_inside=False, impl=impl),
                            lambda g: torch.optim.RMSprop(g, lr=0.01, alpha=0.95, eps=1e-6), 0.01),
    "rmsprop-momentum": (lambda g, impl: RMSprop(g, lr=0.005, rho=0.9, momentum=0.5, eps_inside=False, impl=impl),
                         lambda g: torch.optim.RMSprop(g, lr=0.005, alpha=0.9, momentum=0.5), 0.005),
    "adam": (lambda g, impl: Adam(g, lr=0.02, impl=impl), lambda g: torch.optim.Adam(g, lr=0.02), 0.02),
    "adam-l2": (lambda g, impl: Adam(g, lr=0.02, betas=(0.8, 0.99), eps=1e-6, impl=impl),
                lambda g: torch.optim.Adam(g, lr=0.02, betas=(0.8, 0.99), eps=1e-6), 0.02),
    "adamw": (lambda g, impl: AdamW(g, lr=0.02, impl=impl), lambda g: torch.optim.AdamW(g, lr=0.02), 0.02),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(case, impl):
    ours, theirs, lr = CASES[case]
    expected = run(theirs, lr)
    got = run(lambda g: ours(g, impl), lr)
    assert_same(got, expected)
    moved = sum((a - b).abs().sum() for a, b in zip(expected, make_params()))
    assert moved > 1.0  # the comparison is not between two parameter sets that stayed put


@pytest.mark.parametrize("case", ["momentum-pytorch", "adam", "rmsprop-momentum", "adagrad"])
@pytest.mark.parametrize("impl", ["reference", "flat"])
def test_state_dict_round_trip_mid_run(case, impl):
    ours, _, lr = CASES[case]
    uninterrupted = run(lambda g: ours(g, impl), lr)
    resumed = run(lambda g: ours(g, impl), lr, resume_at=100)
    assert_same(resumed, uninterrupted, rtol=0)


def test_fast_path_equals_reference_path():
    for case in CASES:
        ours, _, lr = CASES[case]
        assert_same(run(lambda g: ours(g, "flat"), lr), run(lambda g: ours(g, "reference"), lr), rtol=1e-12)


def test_saved_state_is_compact():
    params = make_params()
    opt = Adam(groups(params), lr=0.01, impl="flat")
    loss_fn(params, 0).backward()
    opt.step()
    state = opt.state_dict()["state"]
    assert all(v.numel() == params[k].numel() for k, s in state.items() for n, v in s.items() if n != "step")


# -- against float64 transcriptions of the formulas ---------------------------------------------------
def lecture_momentum(p, g, st, lr, t, wd, gamma=0.9):
    g = g + wd * p
    st["dw"] = lr * g + gamma * st["dw"]  # dw_t = eta dE/dw + gamma dw_{t-1}
    p -= st["dw"]  # w <- w - dw_t


@pytest.mark.parametrize("impl", IMPLS)
def test_lecture_momentum_matches_its_formula_with_changing_rate(impl):
    expected = transcribe(lecture_momentum, 0.01, state_names=("dw",))
    got = run(lambda g: Momentum(g, lr=0.01, momentum=0.9, impl=impl), 0.01)
    assert_same(got, expected)


def test_lecture_and_pytorch_momentum_agree_at_constant_rate_and_differ_when_it_changes():
    def run_const(make):
        params = make_params()
        opt = make(groups(params))
        for step in range(STEPS):
            opt.zero_grad()
            loss_fn(params, step).backward()
            opt.step()
        return [p.detach() for p in params]

    lecture = lambda g: Momentum(g, lr=0.01, momentum=0.9, impl="reference")
    pytorch = lambda g: torch.optim.SGD(g, lr=0.01, momentum=0.9)
    assert_same(run_const(lecture), run_const(pytorch), rtol=1e-9)
    changing_l, changing_p = run(lecture, 0.01), run(pytorch, 0.01)
    diff = max((a - b).abs().max().item() for a, b in zip(changing_l, changing_p))
    assert diff > 1e-4  # after the rate changes at step 80 the two rules part ways


def lecture_nesterov(p, g, st, lr, t, wd, gamma=0.9):
    g = g + wd * p
    st["dw"] = lr * g + gamma * st["dw"]
    p -= gamma * st["dw"] + lr * g


def test_lecture_nesterov_matches_its_formula():
    expected = transcribe(lecture_nesterov, 0.01, state_names=("dw",))
    assert_same(run(lambda g: Momentum(g, lr=0.01, nesterov=True, impl="flat"), 0.01), expected)


def decoupled_sgd(p, g, st, lr, t, wd):
    p -= lr * wd * p + lr * g


def test_decoupled_weight_decay_sgd_matches_its_formula():
    expected = transcribe(decoupled_sgd, 0.01, state_names=())
    assert_same(run(lambda g: SGD(g, lr=0.01, decoupled_weight_decay=True, impl="flat"), 0.01), expected)


def lecture_rmsprop(p, g, st, lr, t, wd, rho=0.9, eps=1e-8):
    g = g + wd * p
    st["v"] = rho * st["v"] + (1 - rho) * g ** 2
    p -= lr * g / torch.sqrt(st["v"] + eps)  # eps inside the root


@pytest.mark.parametrize("impl", IMPLS)
def test_lecture_rmsprop_eps_inside_matches_its_formula(impl):
    expected = transcribe(lecture_rmsprop, 0.01, state_names=("v",))
    assert_same(run(lambda g: RMSprop(g, lr=0.01, impl=impl), 0.01), expected)


def adam_slide(p, g, st, lr, t, wd, b1=0.9, b2=0.999, eps=1e-8):
    g = g + wd * p
    st["v"] = b1 * st["v"] + (1 - b1) * g
    st["s"] = b2 * st["s"] + (1 - b2) * g ** 2
    p -= lr * st["v"] / torch.sqrt(st["s"] + eps)  # no bias correction, eps inside; no trailing * g


@pytest.mark.parametrize("impl", IMPLS)
def test_adam_slide_form_matches_its_formula(impl):
    expected = transcribe(adam_slide, 0.005, state_names=("v", "s"))
    got = run(lambda g: Adam(g, lr=0.005, bias_correction=False, eps_inside=True, impl=impl), 0.005)
    assert_same(got, expected)


def adam_formula(p, g, st, lr, t, wd, b1=0.9, b2=0.999, eps=1e-8):
    g = g + wd * p
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g ** 2
    m_hat = st["m"] / (1 - b1 ** t)
    v_hat = st["v"] / (1 - b2 ** t)
    p -= lr * m_hat / (torch.sqrt(v_hat) + eps)


def test_adam_matches_kingma_and_ba():
    expected = transcribe(adam_formula, 0.02, state_names=("m", "v"))
    assert_same(run(lambda g: Adam(g, lr=0.02, impl="flat"), 0.02), expected)


# -- validation, names, the parameter-group policy --------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda p: SGD(p, lr=-0.1), "invalid lr"),
    (lambda p: Momentum(p, lr=0.1, momentum=1.0), "invalid momentum"),
    (lambda p: Adam(p, betas=(0.9, 1.5)), "invalid beta2"),
    (lambda p: RMSprop(p, rho=-0.1), "invalid rho"),
    (lambda p: Adagrad(p, weight_decay=-1), "invalid weight_decay"),
    (lambda p: Momentum(p, convention="keras"), "convention"),
    (lambda p: SGD(p, impl="fast"), "impl must be one of"),
])
def test_invalid_hyperparameters_are_clear_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make(make_params())


def test_create_optimizer_names():
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"):
        for impl in ("reslab", "reference", "torch"):
            opt = create_optimizer(name, make_params(), impl=impl, lr=0.01)
            assert isinstance(opt, torch.optim.Optimizer)
    assert create_optimizer("nesterov", make_params(), lr=0.1).param_groups[0]["nesterov"]
    with pytest.raises(Exception, match="unknown optimizer 'adamax'"):
        create_optimizer("adamax", make_params(), lr=0.1)


def test_no_weight_decay_on_biases_and_batchnorm():
    from reslab.models import create_model

    model = create_model("resnet20")
    decay, no_decay = param_groups(model, weight_decay=1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    bn_and_bias = {id(p) for n, p in model.named_parameters() if "bn" in n or n.endswith("bias")}
    assert {id(p) for p in no_decay["params"]} == bn_and_bias
    assert len(param_groups(model, weight_decay=1e-4, decay_norm_and_bias=True)) == 1


def test_flat_layout_survives_model_changes_and_outside_zero_grad():
    params = make_params()
    opt = Momentum(groups(params), lr=0.01, impl="flat")
    loss_fn(params, 0).backward()
    opt.step()
    assert all(p.grad is not None for p in params)
    for p in params:  # code outside the optimizer clears the gradients its own way
        p.grad = None
    loss_fn(params, 1).backward()
    opt.step()
    reference = make_params()
    ref_opt = Momentum(groups(reference), lr=0.01, impl="reference")
    for step in range(2):
        ref_opt.zero_grad()
        loss_fn(reference, step).backward()
        ref_opt.step()
    assert_same([p.detach() for p in params], [p.detach() for p in reference], rtol=1e-12)


def test_many_optimizers_in_one_process_stay_compiled():
    """An experiment trains several models in one process: the compiled step must not hit torch.compile's
    recompile limit and fall back (one graph serves every buffer size). Starts from a fresh compile cache,
    as such a process does: earlier tests in this process compiled steps of other shapes and groupings."""
    torch._dynamo.reset()
    for n in range(10):
        ps = [torch.randn(50 + 13 * n, requires_grad=True), torch.randn(3 + n, requires_grad=True)]
        opt = Momentum([{"params": ps[:1], "weight_decay": 1e-4}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.1)
        opt.zero_grad()
        sum((p ** 2).sum() for p in ps).backward()
        opt.step()
        assert opt.fast_path == "compiled", n


def test_compile_switched_off_by_the_user_takes_the_flat_path_without_a_warning(monkeypatch, recwarn):
    monkeypatch.setenv("TORCH_COMPILE_DISABLE", "1")  # read when the optimizer is made; torch's compiler untouched
    p = torch.randn(20, requires_grad=True)
    opt = Momentum([p], lr=0.1)
    (p ** 2).sum().backward()
    opt.step()
    assert opt.fast_path == "flat" and not [w for w in recwarn if "torch.compile" in str(w.message)]
