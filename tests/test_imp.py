"""IMP with rewinding (docs/design.md §2.2, §2.7): global magnitude, rate per round, masks hold."""

import pytest
import torch
from torch import nn

from spikingjelly_lt.cell import Cell
from spikingjelly_lt.nn.masks import weight_mask_of
from spikingjelly_lt.pruners import magnitude
from spikingjelly_lt.pruners.base import TrainContext
from spikingjelly_lt.pruners.common import latent_weight, prunable_layers, sparsity_report
from spikingjelly_lt.pruners.imp import IMPPruner, round_rate


def net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    return magnitude.add_masks(model)


def test_round_rate_reaches_target_after_k_rounds():
    for s, k in [(0.5, 1), (0.9, 3), (0.683, 5)]:
        p = round_rate(s, k)
        assert abs((1 - (1 - p) ** k) - s) < 1e-12


def test_masks_are_parametrizations_and_weight_is_what_runs():
    model = net()
    conv = model[0]
    assert weight_mask_of(conv) is not None and torch.equal(conv.weight, latent_weight(conv))
    magnitude.prune_to(model, 0.5)
    assert torch.equal(conv.weight, latent_weight(conv) * weight_mask_of(conv).mask)
    assert any(k.endswith("parametrizations.weight.0.mask") for k in model.state_dict())


@pytest.mark.parametrize("rounds", [1, 3])
def test_global_magnitude_pruning_hits_sparsity_and_removes_smallest(rounds):
    model = net()
    weights = torch.cat([m.weight.detach().abs().reshape(-1) for _, m in prunable_layers(model)])
    total = weights.numel()  # 72 + 192 = 264
    rate = round_rate(0.75, rounds)
    kept = total
    for _ in range(rounds):
        magnitude.prune_remaining(model, rate)
        kept -= round(rate * kept)
        rep = sparsity_report(model)
        assert rep["numel"] - rep["zeros"] == kept  # exact count per round
    if rounds == 1:  # exactly the smallest 75% by magnitude, across layers
        keep = torch.cat([(weight_mask_of(m).mask.reshape(-1) > 0) for _, m in prunable_layers(model)])
        assert int(keep.sum()) == total - round(0.75 * total)
        assert (weights[~keep] <= weights[keep].min()).all()
    assert not any(parametrize_names(model[1]))  # BN untouched


def parametrize_names(module):
    return [n for n, _ in module.named_modules() if "parametrizations" in n]


def test_pruned_weights_stay_zero_through_training_and_rewind_restores_survivors():
    model = net()
    early = magnitude.snapshot(model)
    magnitude.prune_remaining(model, 0.5)
    masks = [weight_mask_of(m).mask.clone() for _, m in prunable_layers(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=5e-4, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 2, 6, 6)).pow(2).sum().backward()
        opt.step()
    for (_, m), mask in zip(prunable_layers(model), masks):
        assert (m.weight[mask == 0] == 0).all()
    magnitude.rewind(model, early)
    for (name, m), mask in zip(prunable_layers(model), masks):
        assert torch.equal(weight_mask_of(m).mask, mask)
        assert torch.equal(latent_weight(m), early[f"{name}.parametrizations.weight.original"])
        assert (m.weight[mask == 0] == 0).all()


def test_imp_lifecycle_mask_counts_per_round_and_lr_rewind():
    cell = Cell(method="snn-imp", sparsity=0.875).replace(imp_rounds=3, rewind_epoch=1, epochs=4, rewind_lr=True)
    pruner = IMPPruner(weights="fp32")
    model = pruner.apply(nn.Sequential(nn.Linear(10, 8), nn.Linear(8, 4)), cell)
    assert pruner.rounds(cell.recipe) == 4
    ctx = TrainContext(cell=cell, rounds=4)
    pruner.on_train_start(model, ctx)  # epoch 0: no snapshot (rewind epoch is 1)
    assert "rewind" not in pruner.state
    ctx.epoch = 1
    pruner.on_epoch_end(model, ctx)
    assert "rewind" in pruner.state
    kept = []
    for r in range(3):
        ctx.round = r
        plan = pruner.on_round_end(model, ctx)
        assert plan.start_epoch == 1  # Frankle-style: the schedule resumes at the rewind epoch
        kept.append(sparsity_report(model)["numel"] - sparsity_report(model)["zeros"])
    assert kept == [56, 28, 14]  # 112 weights, p = 0.5 per round
    assert pruner.describe()["rewind"] == "weights+lr schedule"
