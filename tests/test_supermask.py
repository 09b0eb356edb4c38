"""Supermask layers (docs/design.md §2.1): exact checks on tiny layers."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spikingjelly_lt._sj import functional, layer
from spikingjelly_lt.nn.supermask import Supermask
from spikingjelly_lt.nn.topk import keep_count, topk_mask
from spikingjelly_lt.pruners.common import sparsity_report
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.pruners.supermask import (SupermaskPruner, apply_supermask, bake, ramp_kept_fraction,
                                              score_parameters, supermask_layers)


def tiny(binary=True, sparsity=0.5, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    return apply_supermask(model, sparsity, binary=binary, **kw)


def test_topk_mask_exact_count_and_deterministic_ties():
    v = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.5, 2.0])
    m = topk_mask(v, 3)
    assert m.tolist() == [False, True, True, True, False, False]
    m = topk_mask(v, 2)  # tie among the 3.0s: lowest index wins
    assert m.tolist() == [False, True, True, False, False, False]
    assert topk_mask(torch.zeros(10), 4).tolist() == [True] * 4 + [False] * 6


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_layer_density_is_one_minus_sparsity(sparsity):
    model = tiny(sparsity=sparsity)
    for row in sparsity_report(model)["layers"]:
        kept = row["numel"] - row["zeros"]
        assert kept == keep_count(row["numel"], sparsity)
        assert abs(kept - (1 - sparsity) * row["numel"]) <= 1


def test_binary_weights_are_exactly_three_valued_with_right_alpha():
    model = tiny(binary=True, sparsity=0.6)
    for name, p in supermask_layers(model):
        module = dict(model.named_modules())[name]
        w_frozen = module.parametrizations.weight.original
        mask = p.mask()
        alpha = w_frozen.abs()[mask].mean()
        w = module.weight.detach()
        values = torch.unique(w)
        assert len(values) == 3 and values[1] == 0 and values[0] == -values[2]
        torch.testing.assert_close(values[2], alpha, rtol=1e-6, atol=0)
        assert torch.equal(w != 0, mask)
        assert torch.equal(torch.sign(w)[mask], torch.sign(w_frozen)[mask])


def test_fp_weights_are_frozen_weight_times_mask():
    model = tiny(binary=False, sparsity=0.5)
    for name, p in supermask_layers(model):
        module = dict(model.named_modules())[name]
        assert torch.equal(module.weight.detach(), module.parametrizations.weight.original * p.mask())


@pytest.mark.parametrize("binary", [False, True])
def test_score_gradient_matches_hand_formula(binary):
    torch.manual_seed(1)
    lin = nn.Linear(4, 3, bias=False)
    apply_supermask(lin, 0.5, binary=binary)
    x = torch.randn(5, 4)
    g_out = torch.randn(5, 3)
    (lin(x) * g_out).sum().backward()
    W = lin.parametrizations.weight.original
    s = lin.parametrizations.weight[0].scores
    g_weff = g_out.t() @ x  # dL/dw_eff for y = x w^T
    expected = g_weff * W * torch.sign(s)
    torch.testing.assert_close(s.grad, expected, rtol=1e-6, atol=1e-7)
    assert W.grad is None


def test_weights_bit_identical_after_optimizer_steps_and_scores_move_the_mask():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    model = apply_supermask(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), 0.5, binary=True)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "original" in n}
    masks0 = [p.mask().clone() for _, p in supermask_layers(model)]
    scores0 = [s.detach().clone() for s in score_parameters(model)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(s) for s in score_parameters(model)}
    opt = torch.optim.Adam(trainable, lr=0.1)
    loss0 = None
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss0 = loss0 if loss0 is not None else loss.item()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if "original" in n:
            assert torch.equal(p, frozen[n])
    assert any(not torch.equal(s, s0) for s, s0 in zip(score_parameters(model), scores0))
    assert any(not torch.equal(p.mask(), m0) for (_, p), m0 in zip(supermask_layers(model), masks0))
    assert loss.item() < loss0


def test_mask_computed_once_per_forward_in_multi_step_mode():
    conv = layer.Conv2d(2, 4, 3, padding=1, step_mode="m")
    apply_supermask(conv, 0.5)
    p = conv.parametrizations.weight[0]
    calls = []
    original = p.mask
    p.mask = lambda: calls.append(1) or original()
    out = conv(torch.randn(4, 3, 2, 5, 5))  # [T, N, C, H, W]
    assert out.shape == (4, 3, 4, 5, 5)
    assert len(calls) == 1
    functional.set_step_mode(conv, "s")
    assert conv(torch.randn(3, 2, 5, 5)).shape == (3, 4, 5, 5)


def test_global_scope_hits_total_sparsity_and_layers_differ():
    model = tiny(sparsity=0.7, scope="global")
    rep = sparsity_report(model)
    assert rep["numel"] - rep["zeros"] == keep_count(rep["numel"], 0.7)
    densities = {round(1 - r["sparsity"], 3) for r in rep["layers"]}
    assert len(densities) > 1


def test_keep_first_last_dense_and_learn_bn():
    model = tiny(sparsity=0.5, keep_first=True, keep_last=True, learn_bn=True)
    assert not parametrize.is_parametrized(model[0]) and not parametrize.is_parametrized(model[4])
    assert model[0].weight.requires_grad and model[1].weight.requires_grad
    model = tiny(sparsity=0.5, learn_bn=False)
    assert not model[1].weight.requires_grad and not model[1].bias.requires_grad
    model = tiny(sparsity=0.5)  # the default is the binw-slt preset's (the smoke profile trains BN)
    assert model[1].weight.requires_grad and model[1].bias.requires_grad


def test_bake_leaves_plain_module_with_effective_weight():
    model = tiny(binary=True, sparsity=0.5)
    x = torch.randn(2, 3, 6, 6)
    model.eval()
    before = model(x)
    w = model[0].weight.detach().clone()
    bake(model)
    assert not parametrize.is_parametrized(model[0])
    assert torch.equal(model[0].weight, w)
    torch.testing.assert_close(model(x), before)


def test_score_init_is_kaiming_uniform_bound():
    p = Supermask((64, 32), 0.5)
    bound = 1 / math.sqrt(32)  # kaiming_uniform a=sqrt(5): gain*sqrt(3/fan_in) = 1/sqrt(fan_in)
    assert p.scores.abs().max() <= bound + 1e-6


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_mask_follows_scores_written_through_data(scope):
    model = tiny(sparsity=0.5, scope=scope)
    layers = supermask_layers(model)
    model(torch.randn(1, 3, 6, 6))  # a forward before the write
    with torch.no_grad():  # .data writes bump no version counter
        for _, q in layers:
            q.scores.data.copy_(torch.arange(q.scores.numel(), dtype=torch.float32).view_as(q.scores))
    model(torch.randn(1, 3, 6, 6))
    flat = torch.cat([q.scores.detach().abs().reshape(-1) for _, q in layers])
    sizes = [q.scores.numel() for _, q in layers]
    if scope == "layer":
        expect = [topk_mask(q.scores.abs(), keep_count(q.scores.numel(), 0.5)).reshape(-1) for _, q in layers]
        # the largest |s| are the last flat indices of each layer now
        assert torch.equal(expect[0], torch.arange(sizes[0]) >= sizes[0] - keep_count(sizes[0], 0.5))
    else:
        expect = list(topk_mask(flat, keep_count(flat.numel(), 0.5)).split(sizes))
    for (name, q), e in zip(layers, expect):
        w = dict(model.named_modules())[name].weight
        assert torch.equal(w.reshape(-1) != 0, e)


def test_mask_follows_a_new_sparsity():
    model = tiny(sparsity=0.5)
    _, p = supermask_layers(model)[0]
    before = int((model[0].weight != 0).sum())
    p.sparsity = 0.75
    after = int((model[0].weight != 0).sum())
    assert (before, after) == (keep_count(p.scores.numel(), 0.5), keep_count(p.scores.numel(), 0.75))


def test_mask_follows_a_device_move():
    model = tiny(sparsity=0.5)
    _, p = supermask_layers(model)[0]
    m0 = p.mask().clone()
    old_ptr = p.scores.data_ptr()
    model.to(torch.float64)  # new storage for the scores, as .to(device) gives
    assert p.scores.data_ptr() != old_ptr
    assert torch.equal(p.mask(), m0) and model[0].weight.dtype == torch.float64
    with torch.no_grad():
        p.scores.neg_().mul_(torch.linspace(0.5, 2, p.scores.numel(), dtype=torch.float64).view_as(p.scores))
    assert torch.equal(p.mask(), topk_mask(p.scores.abs(), keep_count(p.scores.numel(), 0.5)))


def test_keep_first_last_train_under_the_weight_optimizer():
    cell = Cell(method="binw-slt").replace(keep_first=True, keep_last=True, learn_bn=True, lr=0.05,
                                           weight_decay=1e-4, score_lr=0.2)
    pruner = SupermaskPruner(weights="binary")
    model = pruner.apply(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                       nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5)), cell)
    groups = {g.name: g for g in pruner.param_groups(model, cell.recipe)}
    dense = {id(p) for p in groups["kept-dense layers"].params}
    assert dense == {id(model[0].weight), id(model[0].bias), id(model[6].weight), id(model[6].bias)}
    assert (groups["kept-dense layers"].optimizer, groups["kept-dense layers"].lr,
            groups["kept-dense layers"].weight_decay) == ("sgd", 0.05, 1e-4)
    adam = {id(p) for p in groups["scores"].params}
    assert id(model[4].parametrizations.weight[0].scores) in adam and id(model[1].weight) in adam
    assert (groups["scores"].optimizer, groups["scores"].lr, groups["scores"].weight_decay) == ("adam", 0.2, 0.0)
    assert not dense & adam


def test_biprop_global_ramp_is_cubic_from_half_to_target():
    assert ramp_kept_fraction(0.1, 0.0) == 0.5
    assert ramp_kept_fraction(0.1, 1.0) == pytest.approx(0.1)
    assert ramp_kept_fraction(0.1, 0.5) == pytest.approx(0.1 + 0.4 * 0.125)
    assert ramp_kept_fraction(0.1, 2.0) == pytest.approx(0.1)
