import pytest
import torch
from torch import nn

from reslab.analysis.gradients import MLP, gradient_flow
from reslab.analysis.responses import layer_responses, response_points
from reslab.models import create_model
from reslab.models.resnet import BasicBlock, ResNet


def tiny(**kw):
    torch.manual_seed(0)
    return ResNet(BasicBlock, [2, 1, 1], (4, 8, 8), num_classes=3, **kw)


def test_gradient_norms_match_autograd():
    model = tiny().train()
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    flow = gradient_flow(model, x, y)

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.setdefault(m, o)) for m in layers]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in hooks:
        h.remove()
    ordered = list(outputs)  # forward order
    w_grads = torch.autograd.grad(loss, [m.weight for m in ordered], retain_graph=True)
    o_grads = torch.autograd.grad(loss, [outputs[m] for m in ordered])
    assert len(flow.layers) == len(ordered)
    for rec, w, o in zip(flow.layers, w_grads, o_grads):
        assert rec.weight_grad_norm == pytest.approx(w.norm().item(), rel=1e-5)
        assert rec.output_grad_norm == pytest.approx(o.norm().item() / 6 ** 0.5, rel=1e-5)
    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())  # the analysis leaves no gradients behind


def test_plain_deep_net_without_bn_loses_its_gradient_and_residual_keeps_it():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    plain = gradient_flow(create_model("plain56", norm="none").train(), x, y)
    torch.manual_seed(0)
    mlp_plain = gradient_flow(MLP(depth=30, activation="sigmoid", init="xavier"), x, y)
    mlp_res = gradient_flow(MLP(depth=30, activation="sigmoid", init="xavier", residual=True), x, y)
    assert mlp_plain.ratio_first_last() < 1e-3  # sigmoid: each layer scales the gradient by <= 1/4
    assert mlp_res.ratio_first_last() > 1e-2
    assert plain.layers[0].weight_grad_norm != plain.layers[-1].weight_grad_norm


def test_response_hook_sees_every_3x3_layer_once():
    model = create_model("resnet20")
    x = torch.randn(4, 3, 32, 32)
    points = response_points(model, x)
    assert len(points) == 19  # the stem and 18 layers in 9 blocks
    assert all(isinstance(m, nn.BatchNorm2d) for _, m in points)
    assert points[0][0] == "bn1" and points[1][0] == "layer1.0.bn1" and points[2][0] == "layer1.0.bn2"
    responses = layer_responses(model, x)
    assert [r.index for r in responses] == list(range(1, 20))
    no_bn = response_points(create_model("plain20", norm="none"), x)
    assert len(no_bn) == 19 and all(isinstance(m, nn.Conv2d) for _, m in no_bn)


def test_response_is_the_channel_std_after_bn():
    model = tiny().eval()
    x = torch.randn(5, 3, 8, 8)
    outs = {}
    model.layer1[0].bn2.register_forward_hook(lambda m, i, o: outs.setdefault("r", o))
    responses = {r.name: r.std for r in layer_responses(model, x)}
    expected = outs["r"].transpose(0, 1).flatten(1).std(dim=1).mean().item()
    assert responses["layer1.0.bn2"] == pytest.approx(expected, rel=1e-6)


def test_analysis_batch_takes_every_class_in_equal_share_and_mixes_them():
    # The held-out set is stored class by class; its first images would all be one class, and a one-class
    # batch distorts BatchNorm's batch statistics in the gradient analysis.
    from reslab.workflows.restore import analysis_batch
    from reslab.config import DataConfig

    cfg = DataConfig(dataset="sample", val_size=500)
    x, y, data = analysis_batch(cfg, n=100)
    assert x.shape[0] == 100 and y.shape == (100,)
    assert torch.bincount(y, minlength=data.num_classes).tolist() == [10] * data.num_classes
    assert len(set(y[:20].tolist())) >= 5
    x2, y2, _ = analysis_batch(cfg, n=100)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # fixed: a pure function of the seed
    full = data.val
    assert x.shape[1:] == full.images.shape[1:] and abs(float(x.mean())) < 1.0


@pytest.mark.parametrize("ratios, reading", [
    ({"plain56 init": 2.0, "plain56 trained": 0.5, "resnet56 init": 1.0}, "support He et al.'s reading that"),
    ({"plain56 init": 692.0, "plain56 trained": 0.6, "resnet56 trained": 1.4}, "at initialisation only (plain56 init"),
    ({"plain56 init": 2.0, "plain56 trained": 0.01}, "support the notes' reading"),
    ({"resnet56 init": 0.01}, None),
])
def test_gradient_verdict_says_which_reading_the_ratios_support(ratios, reading):
    from reslab.analysis.gradients import gradient_verdict

    flows = {label: {"ratio_first_last_weight": r, "model": label.split()[0], "when": label.split()[1]}
             for label, r in ratios.items()}
    text = gradient_verdict(flows)
    for label, r in ratios.items():
        assert f"{label} {r:.3g}" in text
    if reading is None:
        assert "reading" not in text
    else:
        assert reading in text


def test_responses_verdict_compares_twins_of_equal_depth():
    from reslab.analysis.responses import responses_verdict

    def layers(*stds):
        return [{"std": s} for s in stds]

    text = responses_verdict({"plain56": layers(1.0, 1.0), "resnet56": layers(0.8, 0.9), "plain20": layers(1.2)})
    assert "resnet56's mean response is 15% below plain56's." in text
    assert "Every residual network responds more weakly" in text
    text = responses_verdict({"plain20": layers(1.0), "resnet20": layers(1.1)})
    assert "resnet20's mean response is 10% above plain20's." in text and "not uniformly smaller" in text


def test_flow_over_batches_takes_the_median_of_each_figure_and_keeps_every_batch_ratio():
    import statistics

    from reslab.analysis.gradients import flow_over

    model = tiny().train()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(6, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])) for _ in range(3)]
    singles = [gradient_flow(model, x, y) for x, y in batches]
    summary = flow_over(model, batches)
    ratios = [f.ratio_first_last() for f in singles]
    assert summary["ratio_draws_weight"] == pytest.approx(ratios, rel=1e-6)
    assert summary["ratio_first_last_weight"] == pytest.approx(statistics.median(ratios), rel=1e-6)
    assert len(set(ratios)) == 3  # the batches do differ, so the median is a real choice
    assert summary["ratio_first_last_output"] == pytest.approx(
        statistics.median(f.ratio_first_last("output_grad_norm") for f in singles), rel=1e-6)
    for i, layer in enumerate(summary["layers"]):
        assert layer["name"] == singles[0].layers[i].name
        assert layer["weight_grad_norm"] == pytest.approx(
            statistics.median(f.layers[i].weight_grad_norm for f in singles), rel=1e-6)
    assert summary["loss"] == pytest.approx(statistics.fmean(f.loss for f in singles), rel=1e-6)
    one = flow_over(model, batches[:1])
    assert one["ratio_first_last_weight"] == pytest.approx(singles[0].ratio_first_last(), rel=1e-6)
    with pytest.raises(ValueError):
        flow_over(model, [])


def test_gradient_verdict_reads_the_median_and_shows_the_range():
    from reslab.analysis.gradients import gradient_verdict

    # one batch of the three below the 0.1 edge, the median above it: healthy after training
    flows = {"plain56 init": {"ratio_first_last_weight": 600.0, "ratio_draws_weight": [500.0, 600.0, 900.0],
                              "model": "plain56", "when": "init"},
             "plain56 trained": {"ratio_first_last_weight": 0.15, "ratio_draws_weight": [0.05, 0.15, 0.6],
                                 "model": "plain56", "when": "trained"}}
    text = gradient_verdict(flows)
    assert "median over 3 held-out batches" in text
    assert "plain56 trained 0.15 [0.05-0.6]" in text and "at initialisation only (plain56 init" in text
    assert "plain56 init 600 [500-900]" in text  # written out, not 5e+02-9e+02
    flows["plain56 trained"]["ratio_first_last_weight"] = 0.06
    assert "support the notes' reading" in gradient_verdict(flows)


def test_analysis_batches_start_with_analysis_batch_and_draw_the_others_each_stratified():
    from reslab.config import DataConfig
    from reslab.workflows.restore import analysis_batch, analysis_batches

    cfg = DataConfig(dataset="sample", val_size=500)
    batches, data = analysis_batches(cfg, n=100, draws=3)
    x0, y0, _ = analysis_batch(cfg, n=100)
    assert len(batches) == 3 and torch.equal(batches[0][0], x0) and torch.equal(batches[0][1], y0)
    for x, y in batches:
        assert x.shape == x0.shape
        assert torch.bincount(y, minlength=data.num_classes).tolist() == [10] * data.num_classes
    assert not torch.equal(batches[1][0], batches[0][0]) and not torch.equal(batches[2][0], batches[1][0])
    with pytest.raises(ValueError):
        analysis_batches(cfg, draws=0)


def test_a_network_with_auxiliary_heads_is_measured_under_the_loss_it_trains_with():
    from reslab.train.trainer import classification_loss

    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=4, small_input=True, aux_weight=0.3).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)  # the same dropout draws in both passes
    flow = gradient_flow(model, x, y)
    torch.manual_seed(1)
    loss, _ = classification_loss(model(x), y)  # the trainer's: main + 0.3 x each auxiliary head
    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    layers = dict((n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    grads = dict(zip(layers, torch.autograd.grad(loss, [m.weight for m in layers.values()])))
    heads = [rec for rec in flow.layers if rec.name.startswith("aux")]
    assert len(heads) >= 4 and all(rec.weight_grad_norm > 0 and rec.output_grad_norm > 0 for rec in heads)
    for rec in flow.layers:
        assert rec.weight_grad_norm == pytest.approx(grads[rec.name].norm().item(), rel=1e-4), rec.name
