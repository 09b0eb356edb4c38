"""The written energy rules (docs/energy.md) on models that are not ours, on the real
``Network``, and the storage / neuron terms: hand counts on tiny nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from spikingjelly_lt._sj import functional, layer, neuron
from spikingjelly_lt.energy import (
    HOROWITZ45_MEM,
    HOROWITZ45_NEURO,
    EnergyCounter,
    count_energy,
    energy_under,
    layer_storage,
    model_storage,
)
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.neuron.fast_lif import FastLIFNode

from test_energy import brute_force_events

LIF_PJ = 2 * 0.9 + 3.7 + 0.9 + 0.9  # 2 adds + 1 mult (charge), compare, reset
MEMBRANE_PJ = 2 * 32 * 10 / 64  # read + write of an fp32 membrane


class Capture:
    """Forward hook that keeps every output of a module."""

    def __init__(self, module: nn.Module):
        self.outs: list[torch.Tensor] = []
        module.register_forward_hook(lambda m, a, o: self.outs.append(o.detach().clone()))


def sj_net(step_mode: str, node=neuron.LIFNode) -> nn.Sequential:
    """A user's SpikingJelly net: conv-BN-LIF-conv-BN-LIF-flatten-linear (8x8, 1 channel)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4), node(),
        layer.Conv2d(4, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4), node(),
        layer.Flatten(), layer.Linear(4 * 64, 3, bias=False),
    )  # fmt: skip
    functional.set_step_mode(net, step_mode)
    for bn in (net[1], net[4]):  # make both LIF layers fire at a moderate rate
        bn.weight.data.fill_(2.0)
        bn.bias.data.fill_(0.3)
    return net.eval()


def test_user_multistep_sj_net_counts_per_image():
    t, n = 4, 5
    net = sj_net("m")
    prune.custom_from_mask(net[3], "weight", (torch.rand(net[3].weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5).float())
    img = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    x = img.unsqueeze(0).repeat(t, 1, 1, 1, 1)  # [T, N, ...]: no timesteps attribute on the root
    lif1, lif2 = Capture(net[2]), Capture(net[5])
    rep = count_energy(net, [x])
    c1, c2, fc = rep.layers
    assert (rep.images, rep.timesteps) == (n, t)
    # the image repeated at every step: MACs once per image, dense 3x3 conv
    assert (c1.input_kind, c1.rule, c1.op_kind) == ("static", "static-mac", "MAC")
    assert c1.macs == 9 * 64 * 1 * 4
    # LIF spikes into the pruned conv: exact events over the nonzero synapses, per image
    s1 = lif1.outs[0]
    assert (c2.input_kind, c2.rule) == ("spike", "spike-ac")
    assert c2.acs * n == brute_force_events(net[3], s1)
    assert c2.weight_density < 0.6 and c2.macs == 0
    assert c2.firing_rate == s1.sum().item() / s1.numel()
    # LIF spikes into the classifier: spikes x 3 outputs
    s2 = lif2.outs[0]
    assert fc.acs * n == s2.sum().item() * 3
    # neurons: T x neurons per image, LIF ops per update
    assert [(r.kind, r.updates) for r in rep.neurons] == [("lif", t * 4 * 64)] * 2
    assert rep.neuron_updates == 2 * t * 256


def test_single_step_net_driven_t_times():
    t, n = 3, 2
    net = sj_net("s", node=lambda: FastLIFNode(tau=2.0, step_mode="s"))
    img = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    lif1 = Capture(net[2])
    with torch.no_grad(), EnergyCounter(net) as counter:
        for _ in range(2):  # two batches of the same images
            for _ in range(t):
                net(img)
            functional.reset_net(net)  # a reset starts the next image: no timesteps needed
    rep = counter.report()
    assert (rep.images, rep.timesteps) == (2 * n, t)
    c1, c2, _ = rep.layers
    # single-step: each call is one step; the image is a graded input, counted every step
    assert c1.input_kind == "graded"
    assert c1.macs * 2 * n == 2 * t * brute_force_events(net[0], img)
    assert c2.acs * 2 * n == sum(brute_force_events(net[3], s) for s in lif1.outs)
    assert rep.neurons[0].updates == t * 4 * 64
    again = count_energy(net, [img, img], timesteps=t)  # the API drives the T steps itself
    assert again.images == 2 * n and again.acs == pytest.approx(rep.acs) and again.macs == pytest.approx(rep.macs)
    with pytest.raises(UsageError, match="timesteps"):
        count_energy(net, [img])


def test_plain_torch_ann():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    ).eval()
    rep = count_energy(net, [torch.randn(6, 3, 5, 5)])
    conv, fc = rep.layers
    assert rep.images == 6 and rep.timesteps is None
    assert (conv.rule, conv.macs) == ("real-mac", 9 * 25 * 3 * 4)
    assert (fc.rule, fc.macs, fc.acs) == ("real-mac", 4 * 2, 0)
    (relu,) = rep.neurons
    assert (relu.kind, relu.updates, relu.compares, relu.state_bits) == ("relu", 4 * 25, 4 * 25, 0)
    neuro = energy_under(rep, HOROWITZ45_NEURO)
    assert neuro.energy_neuron_pj == pytest.approx(100 * 0.9) and neuro.energy_membrane_pj == 0
    assert neuro.energy_pj == pytest.approx(rep.energy_pj + 90)


# ---------------------------------------------------------------- the real Network


def tiny_resnet(timesteps: int | None):
    from spikingjelly_lt.models.resnet19 import resnet19
    from spikingjelly_lt.neuron.neurons import lif, relu

    torch.manual_seed(0)
    factory = (lambda: lif(step_mode="m", v_threshold=0.5)) if timesteps else relu
    return resnet19(neuron=factory, width=0.0625, input_size=8, timesteps=timesteps, fc_bn=True).eval()


@pytest.mark.parametrize("pooled_fc", ["ac", "mac"])
def test_network_first_conv_static_and_pooled_fc(pooled_fc):
    t, n = 4, 3
    net = tiny_resnet(t)
    i_pool = next(i for i, m in enumerate(net.body) if isinstance(m, nn.AdaptiveAvgPool2d))
    pool = net.body[i_pool]
    into_pool = Capture(net.body[i_pool - 1].sn2)  # the last block's neuron feeds the pool
    pooled = Capture(pool)
    x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    rep = count_energy(net, [x], pooled_fc=pooled_fc)
    first = rep.layers[0]
    assert first.name == "encoder.0"
    # Network's hint: the encoder runs once per image on the static image
    assert (first.input_kind, first.rule, first.firing_rate) == ("static", "static-mac", None)
    assert first.macs == 9 * 8 * 8 * 3 * 4  # exactly dense, not x nonzero fraction
    fc1 = next(r for r in rep.layers if r.name == "body.11")
    assert fc1.kind == "linear" and fc1.input_kind == "pooled"
    dense = fc1.weight_numel  # 512/16 -> 256/16: every synapse
    r_pool = into_pool.outs[0].sum().item() / into_pool.outs[0].numel()
    assert fc1.firing_rate == pytest.approx(r_pool, rel=1e-12)
    if pooled_fc == "ac":  # docs/energy.md §3 / Kim et al.: T x r x dense ACs
        assert (fc1.rule, fc1.op_kind) == ("pooled-ac", "AC")
        assert fc1.acs == pytest.approx(t * r_pool * dense, rel=1e-12)
    else:  # the pooled values as graded inputs: nonzero inputs x their fan-out, as MACs
        assert (fc1.rule, fc1.op_kind) == ("pooled-mac", "MAC")
        assert fc1.macs * n == (pooled.outs[0].flatten(2) != 0).sum().item() * 16
    assert rep.options["pooled_fc"] == pooled_fc
    assert all(r.input_kind == "spike" for r in rep.layers[1:] if r.name != "body.11")
    # the ANN of the same network: the encoder is real input, MACs per image
    ann = count_energy(tiny_resnet(None), [x])
    assert ann.layers[0].macs == first.macs and ann.layers[0].rule == "real-mac"


# ---------------------------------------------------------------- storage, one description


def layer_with(weight: torch.Tensor) -> nn.Linear:
    fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        fc.weight.copy_(weight)
    return fc


def test_storage_formats_and_mixed_weight_bits():
    dense = layer_with(torch.randn(4, 8))  # 32 weights
    pruned = layer_with(torch.randn(4, 8) * (torch.arange(32).view(4, 8) % 4 == 0))  # 8 kept
    binary = layer_with(0.5 * torch.randn(4, 8).sign())
    bin_pruned = layer_with(0.5 * torch.randn(4, 8).sign() * (torch.arange(32).view(4, 8) % 2 == 0))
    got = {name: layer_storage(m) for name, m in
           (("d", dense), ("p", pruned), ("b", binary), ("bp", bin_pruned))}
    assert {k: (v.format, v.bits) for k, v in got.items()} == {
        "d": ("dense-fp32", 32 * 32),
        "p": ("bitmask-fp32", 32 + 32 * 8),  # mask + kept values: IMP gets memory credit
        "b": ("sign", 32 + 32),
        "bp": ("sign-mask", 2 * 32 + 32),
    }
    # a binary net whose first and last layers stay fp32: honest mixed average, not 1
    net = nn.Sequential(dense, binary, bin_pruned)
    st = model_storage(net, "binary")
    assert st["weights"] == 96
    assert st["weight_bits"] == (32 * 32 + 1 * 32 + 1 * 16) / (32 + 32 + 16)  # over running weights
    assert st["stored_bits_per_weight"] == (32 * 32 + 64 + 96) / 96
    assert model_storage(nn.Sequential(binary, bin_pruned))["weight_bits"] == 1
    assert st["model_bytes"] == (32 * 32 + 64 + 96) // 8
    # a declared format wins over the inferred one
    binary.sjlt_storage = "mask-seed"
    assert layer_storage(binary).format == "mask-seed" and layer_storage(binary).bits == 32


def test_mem_model_uses_the_same_storage():
    fc = nn.Linear(8, 4, bias=False)
    prune.custom_from_mask(fc, "weight", (torch.arange(32).view(4, 8) % 4 == 0).float())
    net = nn.Sequential(fc)
    rep = count_energy(net, [torch.randn(2, 8)], HOROWITZ45_MEM)
    (row,) = rep.layers
    assert row.storage == "bitmask-fp32" and row.stored_bits == 32 + 32 * 8
    assert rep.energy_mem_pj == pytest.approx(row.stored_bits * 10 / 64)
    assert model_storage(net)["stored_bits_per_weight"] == row.stored_bits / 32
    assert model_storage(net)["weight_bits"] == 32


# ---------------------------------------------------------------- neuron-aware model


@pytest.mark.parametrize("node,kind,per_update", [
    (lambda: neuron.LIFNode(tau=2.0, step_mode="m"), "lif", LIF_PJ),
    (lambda: FastLIFNode(tau=2.0, step_mode="m"), "lif", LIF_PJ),
    (lambda: neuron.ParametricLIFNode(step_mode="m"), "plif", LIF_PJ),
    (lambda: neuron.IFNode(step_mode="m"), "if", 0.9 + 0.9 + 0.9),
])
def test_neuro_model_hand_value(node, kind, per_update):
    t, n = 2, 3
    net = nn.Sequential(layer.Linear(5, 6, bias=False, step_mode="m"), node(), layer.Linear(6, 2, bias=False, step_mode="m")).eval()
    x = torch.rand(t, n, 5, generator=torch.Generator().manual_seed(5))
    rep = count_energy(net, [x], "horowitz45-neuro")
    (lif_row,) = rep.neurons
    assert (lif_row.kind, lif_row.updates, lif_row.state_bits) == (kind, t * 6, 32)
    assert rep.energy_neuron_pj == pytest.approx(t * 6 * per_update)
    assert rep.energy_membrane_pj == pytest.approx(t * 6 * MEMBRANE_PJ)
    syn = energy_under(rep, "horowitz45")
    assert syn.energy_neuron_pj == 0 and rep.energy_pj == pytest.approx(syn.energy_pj + t * 6 * (per_update + MEMBRANE_PJ))
    assert rep.model == "horowitz45-neuro"


def test_bad_pooled_fc_option():
    with pytest.raises(UsageError, match="pooled_fc"):
        EnergyCounter(nn.Linear(2, 2), pooled_fc="maybe")


def test_every_rule_and_model_is_written_down():
    from pathlib import Path

    from spikingjelly_lt import plugins
    from spikingjelly_lt.energy import RULES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "energy.md").read_text()
    assert f"`{RULES}`" in doc
    for rule in ("static-mac", "spike-ac", "pooled-ac", "pooled-mac", "graded-mac", "real-mac", "sign-ac"):
        assert f"`{rule}`" in doc, rule
    for name in plugins.names("energy_models"):
        assert f"`{name}`" in doc, name
