"""IMP with rewinding (design 2.2): global magnitude, rate per round, masks hold."""

import pytest
import torch
from torch import nn

from spikingjelly_lt.pruners.common import prunable_layers, sparsity_report
from spikingjelly_lt.pruners.imp import imp, prune_round, rewind, round_rate, snapshot


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_round_rate_reaches_target_after_k_rounds():
    for s, k in [(0.5, 1), (0.9, 3), (0.683, 5)]:
        p = round_rate(s, k)
        assert abs((1 - (1 - p) ** k) - s) < 1e-12


@pytest.mark.parametrize("rounds", [1, 3])
def test_global_magnitude_pruning_hits_sparsity_and_removes_smallest(rounds):
    model = net()
    weights = torch.cat([m.weight.detach().abs().reshape(-1) for _, m in prunable_layers(model)])
    imp(model, 0.75, rounds=rounds)
    rep = sparsity_report(model)
    assert abs(rep["sparsity"] - 0.75) <= 2 / rep["numel"] * rounds
    if rounds == 1:  # exactly the smallest 75% by magnitude, across layers
        kept = torch.cat([(m.weight_mask.reshape(-1) > 0) for _, m in prunable_layers(model)])
        threshold = weights[kept].min()
        assert (weights[~kept] <= threshold).all()
    assert all(not hasattr(m, "weight_mask") for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(not hasattr(m, "bias_mask") for _, m in prunable_layers(model))


def test_pruned_weights_stay_zero_through_training_and_rewind_restores_survivors():
    model = net()
    early = snapshot(model)
    prune_round(model, 0.5)
    masks = [m.weight_mask.clone() for _, m in prunable_layers(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=5e-4, momentum=0.9)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 2, 6, 6)).pow(2).sum().backward()
        opt.step()
    for (_, m), mask in zip(prunable_layers(model), masks):
        assert (m.weight[mask == 0] == 0).all()
    rewind(model, early)
    for (name, m), mask in zip(prunable_layers(model), masks):
        assert torch.equal(m.weight_mask, mask)
        assert torch.equal(m.weight_orig, early[f"{name}.weight"])
        assert (m.weight[mask == 0] == 0).all()
