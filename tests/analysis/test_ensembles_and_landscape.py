import math

import numpy as np
import pytest
import torch
from torch import nn

from reslab.evaluation import fixed_batches, loss_and_error as evaluate
from reslab.analysis.landscape import (WeightMover, filter_normalized_direction, interpolate, surface,
                                       surface_straightforward)
from reslab.analysis.lesion import deleted, lesion_study, reordered
from reslab.analysis.paths import gradient_per_path_length, path_length_counts
from reslab.models import create_model
from reslab.models.resnet import BasicBlock, ResNet


def tiny(shortcut="A", seed=0):
    torch.manual_seed(seed)
    model = ResNet(BasicBlock, [3, 3, 2], (4, 8, 8), num_classes=3, shortcut=shortcut)
    for m in model.modules():  # trained-looking BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def data(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def grid_setup():
    """A tiny network, its batches, two filter-normalised directions and a 3x3 grid."""
    model = tiny()
    x, y = data()
    g = torch.Generator().manual_seed(0)
    d1, d2 = filter_normalized_direction(model, generator=g), filter_normalized_direction(model, generator=g)
    return model, fixed_batches(x, y, 8), d1, d2, [-0.5, 0.0, 0.5]


def test_deleting_a_block_whose_branch_is_zero_changes_nothing():
    model = tiny()
    x, _ = data()
    blocks = model.blocks()
    nn.init.zeros_(blocks[1].bn2.weight)
    nn.init.zeros_(blocks[1].bn2.bias)
    with torch.no_grad():
        before = model(x)
        with deleted(blocks, [1]):
            after = model(x)
        assert torch.equal(before, after)
        with deleted(blocks, [2]):  # a block with a live branch does change the output
            assert not torch.equal(before, model(x))
        assert torch.equal(model(x), before)  # restored on exit


def test_reordering_restores_and_swaps():
    model = tiny()
    x, _ = data()
    with torch.no_grad():
        before = model(x)
        first = model.layer1[1]
        with reordered(model, [(1, 2)]):
            assert model.layer1[2] is first
            changed = model(x)
        assert not torch.equal(before, changed)
        assert model.layer1[1] is first and torch.equal(model(x), before)


def test_lesion_study_shapes():
    model = tiny()
    x, y = data()
    out = lesion_study(model, fixed_batches(x, y, 8), draws=3, reorder_swaps=(1, 2))
    assert len(out["single"]) == 8
    assert [b["downsampling"] for b in out["single"]] == [False, False, False, True, False, False, True, False]
    assert [r["k"] for r in out["random_k"]] == list(range(1, 7))  # the 6 identity blocks
    assert len(out["reorder"]) == 2


def test_lesion_of_a_plain_network_skips_what_cannot_be_deleted():
    model = tiny(shortcut="none")
    x, y = data()
    out = lesion_study(model, fixed_batches(x, y, 8), draws=2, reorder_swaps=(1,))
    shape_changing = [False, False, False, True, False, False, True, False]
    assert [b["downsampling"] for b in out["single"]] == shape_changing
    assert [b["error"] is None for b in out["single"]] == shape_changing  # nothing would carry the input on
    assert [r["k"] for r in out["random_k"]] == list(range(1, 7))
    with pytest.raises(ValueError, match="cannot be deleted"):
        with deleted(model.blocks(), [3]):
            pass


def test_path_counts_are_binomial_and_sum_to_2_to_the_n():
    for n in (1, 3, 9, 54):
        counts = path_length_counts(n)
        assert sum(counts) == 2 ** n
        assert counts == [math.comb(n, k) for k in range(n + 1)]
        assert max(range(n + 1), key=counts.__getitem__) == n // 2


def test_gradient_per_path_length_sums_to_the_whole_gradient_for_one_block():
    """With one block, the two single paths (skip, branch) add up to the full gradient of the block."""
    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1], (4,), num_classes=3, shortcut="A").double().eval()
    x, y = data()
    x = x[:, :, :4, :4].double()
    out = gradient_per_path_length(model, x, y, draws=1)
    assert [r["paths"] for r in out["rows"]] == [1, 1]
    assert abs(sum(r["share"] for r in out["rows"]) - 1) < 1e-9
    assert out["rows"][0]["mean_grad_norm"] > 0 and out["rows"][1]["mean_grad_norm"] > 0


def test_filter_normalisation_gives_each_filter_the_models_norm():
    model = create_model("resnet20")
    d = filter_normalized_direction(model, generator=torch.Generator().manual_seed(0))
    for p, di in zip(model.parameters(), d):
        if p.ndim <= 1:
            assert torch.count_nonzero(di) == 0
        else:
            torch.testing.assert_close(di.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5, atol=1e-6)


def test_landscape_at_the_origin_is_the_models_loss_and_matches_the_straightforward_method(tmp_path):
    model, batches, d1, d2, coords = grid_setup()
    loss0, _ = evaluate(model, batches)
    result = surface(model, d1, d2, coords, batches, checkpoint=tmp_path / "grid.npz")
    grid = np.array(result["loss"])
    assert grid[1, 1] == pytest.approx(loss0, rel=1e-6)
    np.testing.assert_allclose(grid, surface_straightforward(model, d1, d2, coords, batches), rtol=1e-5)
    assert evaluate(model, batches)[0] == pytest.approx(loss0, rel=1e-7)  # weights restored
    # resumable: a saved grid is not recomputed
    calls = []
    again = surface(model, d1, d2, coords, batches, checkpoint=tmp_path / "grid.npz",
                    progress=lambda i, n: calls.append(i))
    assert calls == [] and again["loss"] == result["loss"]
    assert again["seconds"] >= result["seconds"] > 0  # a resumed grid keeps the time already spent on it


def test_landscape_rows_in_worker_processes_equal_the_serial_grid(tmp_path):
    model, batches, d1, d2, coords = grid_setup()
    serial = surface(model, d1, d2, coords, batches)
    rows = []
    parallel = surface(model, d1, d2, coords, batches, jobs=2, checkpoint=tmp_path / "grid.npz",
                       progress=lambda i, n: rows.append(i))
    np.testing.assert_allclose(parallel["loss"], serial["loss"], rtol=1e-6)
    np.testing.assert_allclose(parallel["error"], serial["error"])
    assert rows == [1, 2, 3] and np.load(tmp_path / "grid.npz")["loss"].shape == (3, 3)
    assert evaluate(model, batches)[0] == pytest.approx(serial["loss"][1][1], rel=1e-6)  # the workers moved copies


def test_interpolation_ends_at_both_models():
    a, b = tiny(seed=0), tiny(seed=1)
    x, y = data()
    batches = fixed_batches(x, y, 8)
    before = {n: t.clone() for n, t in a.state_dict().items()}
    out = interpolate(a, b.state_dict(), [0.0, 0.5, 1.0], batches)
    assert out["loss"][0] == pytest.approx(evaluate(a, batches)[0], rel=1e-6)
    assert out["loss"][-1] == pytest.approx(evaluate(b, batches)[0], rel=1e-5)  # BN statistics move too
    for n, t in a.state_dict().items():  # and come back
        assert torch.equal(t, before[n]), n
    b_params = dict(b.named_parameters())
    with WeightMover(a, [b_params[n].detach() - p.detach() for n, p in a.named_parameters()]) as m:
        m.move(1.0)
        for n, p in a.named_parameters():
            torch.testing.assert_close(p, b_params[n])


def test_deleting_a_preactivation_block_leaves_its_shortcut_without_relu():
    model = create_model("preact_resnet110").eval()
    blocks = model.blocks()
    x = torch.randn(2, 16, 8, 8)  # negative values too: a pre-activation block passes them on
    with torch.no_grad(), deleted(blocks, [1]):
        assert torch.equal(blocks[1](x), x)
    down = next(i for i, b in enumerate(blocks) if b.downsample is not None)
    with torch.no_grad(), deleted(blocks, [down]):
        assert torch.equal(blocks[down](x), blocks[down].shortcut(x))


def test_evaluation_precision_of_the_analyses():
    from reslab.workflows.analyze import eval_precision
    from reslab.errors import ReslabError

    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    name, context = eval_precision("fp32")
    with context:
        assert name == "fp32" and conv(x).dtype == torch.float32
    name, context = eval_precision("bf16")
    with context:
        assert name == "bf16" and conv(x).dtype == torch.bfloat16
    with pytest.raises(ReslabError, match="fp32, bf16 or auto"):
        eval_precision("fp16")


def test_bf16_landscape_and_interpolation_move_the_weights_they_evaluate():
    # Autocast caches the bf16 copy of each weight for the whole region: a grid evaluated inside one
    # region must not reuse the first point's weights everywhere.
    model, batches, d1, d2, coords = grid_setup()
    exact = np.array(surface(model, d1, d2, coords, batches)["loss"])
    target = tiny(seed=3).state_dict()
    exact_line = interpolate(model, target, [0.0, 0.5, 1.0], batches)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = np.array(surface(model, d1, d2, coords, batches)["loss"])
        low_line = interpolate(model, target, [0.0, 0.5, 1.0], batches)["loss"]
        after = evaluate(model, batches)[0]
    assert np.ptp(exact) > 0.1
    np.testing.assert_allclose(low, exact, rtol=0.05)
    np.testing.assert_allclose(low_line, exact_line, rtol=0.05)
    assert after == pytest.approx(exact[1, 1], rel=0.05)
