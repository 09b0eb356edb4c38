"""Architectures (docs/design.md §2.5), method presets (§2.4) and the model builder."""

import pytest
import torch

from spikingjelly_lt import plugins
from spikingjelly_lt.build import build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.errors import UnknownNameError
from spikingjelly_lt.methods import METHODS, get_method, resolve


def is_spiking(method):
    return resolve(Cell(method=method)).spiking
from spikingjelly_lt.models.vgg16 import CFG_D
from spikingjelly_lt.pruners.common import prunable_layers, sparsity_report


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet19_width1_has_12_63M_parameters():
    model = build_model(arch="resnet19", method="ann", width=1.0, num_classes=10)
    assert abs(n_params(model) - 12.63e6) / 12.63e6 < 1e-3


def test_vgg16_parameter_count_matches_cfg_d_by_hand():
    expected, cin = 0, 3
    for v in CFG_D:
        if v == "M":
            continue
        expected += 9 * cin * v + 2 * v  # conv (no bias) + BN affine
        cin = v
    expected += 512 * 10 + 10
    assert n_params(build_model(arch="vgg16", method="snn", width=1.0, num_classes=10)) == expected
    assert expected == 14_724_042


@pytest.mark.parametrize("arch", ["resnet19", "vgg16"])
@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("method", ["ann", "binw-slt", "bnn-act-lt"])
def test_output_shapes_at_any_input_size(arch, size, method):
    model = build_model(arch=arch, method=method, width=0.125, input_size=size, num_classes=7, in_channels=1, timesteps=2)
    out = model(torch.randn(3, 1, size, size))
    assert out.shape == (3, 7)
    assert model.timesteps == (2 if is_spiking(method) else None)


def test_spiking_body_runs_multistep_on_T_N():
    model = build_model(arch="resnet19", method="snn", width=0.125, input_size=8, timesteps=3)
    seen = []
    conv = prunable_layers(model)[1][1]
    conv.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    model(torch.randn(2, 3, 8, 8))
    assert seen[0][:2] == (3, 2)


def test_all_methods_resolve():
    assert len(METHODS) == 15  # the 12 of the design + early-time, early-bird, gradual pruning
    m = get_method("binw-slt")
    assert (m.neuron, m.weights, m.pruner) == ("lif", "binary", "supermask")
    assert (get_method("ann-imp").pruner, get_method("bnn-act").neuron) == ("imp", "sign")
    for name in METHODS:
        plugins.lookup("neurons", get_method(name).neuron)
        plugins.lookup("pruners", get_method(name).pruner)


def test_unknown_names_list_valid_choices():
    with pytest.raises(UnknownNameError, match="unknown method 'binw'.*binw-slt"):
        get_method("binw")
    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet18'.*resnet19, vgg16"):
        plugins.lookup("architectures", "resnet18")
    with pytest.raises(UnknownNameError, match="unknown neuron 'alif'.*lif"):
        plugins.lookup("neurons", "alif")
    with pytest.raises(UnknownNameError, match="unknown pruner"):
        plugins.lookup("pruners", "snip")


@pytest.mark.parametrize("method", ["binw-slt", "slt", "bnn-lt", "ann-ep"])
def test_supermask_methods_build_at_target_sparsity(method):
    model = build_model(arch="vgg16", method=method, width=0.125, input_size=8, sparsity=0.5)
    rep = sparsity_report(model)
    assert abs(rep["sparsity"] - 0.5) < 1e-3
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("scores") for n in trainable)


def test_dense_methods_keep_every_weight_and_seed_is_reproducible():
    a = build_model(arch="resnet19", method="binw-snn", width=0.125, seed=3)
    b = build_model(arch="resnet19", method="binw-snn", width=0.125, seed=3)
    assert sparsity_report(a)["sparsity"] == 0.0
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb)
