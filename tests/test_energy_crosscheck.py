"""Our counts against independent counters: SpikingJelly 2.0's op_counter (through
``energy/sj_adapter.py``) and NeuroBench 2.x's ``SynapticOperations``, on the same inputs.
Where the rules coincide the numbers are equal; where they differ by rule, the test
asserts the expected relation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from spikingjelly_lt._sj import functional, layer, neuron
from spikingjelly_lt.energy import count_energy
from spikingjelly_lt.energy.sj_adapter import op_counter_available, op_counter_layer_counts

pytestmark = pytest.mark.skipif(not op_counter_available(), reason="needs SpikingJelly 2.0's op_counter")


def sj_net(pool: bool) -> nn.Sequential:
    """conv(pad 1)-BN-LIF-conv(stride 2)-BN-LIF-[avgpool]-flatten-linear, step mode 'm'."""
    torch.manual_seed(0)
    mods = [
        layer.Conv2d(2, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4), neuron.LIFNode(),
        layer.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), layer.BatchNorm2d(6), neuron.LIFNode(),
    ]  # fmt: skip
    mods += [layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(6, 3, bias=False)] if pool else [
        layer.Flatten(), layer.Linear(6 * 16, 3, bias=False)]
    net = nn.Sequential(*mods)
    functional.set_step_mode(net, "m")
    for bn in (net[1], net[4]):
        bn.weight.data.fill_(2.0)
        bn.bias.data.fill_(0.9)
    return net.eval()


def inputs(t: int = 4, n: int = 3) -> torch.Tensor:
    img = torch.rand(n, 2, 8, 8, generator=torch.Generator().manual_seed(6)) + 0.1  # no zeros
    return img.unsqueeze(0).repeat(t, 1, 1, 1, 1)


def both(net: nn.Module, x: torch.Tensor, **kw):
    rep = count_energy(net, [x], **kw)
    functional.reset_net(net)
    ref = op_counter_layer_counts(net, x)
    functional.reset_net(net)
    return rep, ref


def test_spike_layers_equal_op_counter_synops():
    t, n = 4, 3
    net = sj_net(pool=False)
    rep, ref = both(net, inputs(t, n))
    by = {r.name: r for r in rep.layers}
    # spike-fed layers (padded conv with stride 2, linear): exact events on both sides
    for name in ("3", "7"):
        assert by[name].rule == "spike-ac"
        assert by[name].acs * n == ref[name].synops, name
        assert ref[name].macs == 0
    assert by["3"].acs > 0 and by["7"].acs > 0
    # the direct-encoded first conv: op_counter does T convs of MACs, we count it once
    assert by["0"].rule == "static-mac"
    assert ref["0"].macs == t * n * by["0"].macs


def test_masks_and_pooled_fc_differ_by_rule():
    t, n = 4, 3
    net = sj_net(pool=True)
    mask = (torch.rand(net[3].weight.shape, generator=torch.Generator().manual_seed(7)) < 0.5).float()
    prune.custom_from_mask(net[3], "weight", mask)
    rep, ref = both(net, inputs(t, n), pooled_fc="mac")
    by = {r.name: r for r in rep.layers}
    # op_counter ignores the mask: a pruned synapse still counts there
    assert 0 < by["3"].acs * n < ref["3"].synops
    dense_events = ref["3"].synops
    net[3].weight_mask.fill_(1.0)  # the same spikes into the unpruned weights: equal again
    rep_dense, _ = both(net, inputs(t, n), pooled_fc="mac")
    assert rep_dense.layers[1].acs * n == dense_events
    # the pooled FC: op_counter charges real inputs dense MACs at every step (T x N x 6 x 3);
    # our "mac" option skips the zero pooled values, so it is at most that
    assert ref["8"].macs == t * n * 6 * 3
    assert by["8"].rule == "pooled-mac" and 0 < by["8"].macs * n <= ref["8"].macs
    # ... while the default charges T x r x dense ACs, r = the rate into the pool
    ac = count_energy(net, [inputs(t, n)]).layers[-1]
    functional.reset_net(net)
    assert ac.rule == "pooled-ac" and ac.macs == 0
    assert ac.acs == pytest.approx(t * ac.firing_rate * 6 * 3, rel=1e-12)


def test_neurobench_synaptic_operations():
    nb = pytest.importorskip("neurobench.metrics.workload", reason="NeuroBench 2.x not installed")
    from neurobench.models import TorchModel

    t, n = 4, 3
    net = sj_net(pool=True)
    prune.custom_from_mask(net[3], "weight", (torch.rand(net[3].weight.shape, generator=torch.Generator().manual_seed(8)) < 0.5).float())
    prune.remove(net[3], "weight")  # NeuroBench reads zeros in a plain weight, not prune's hooks
    x = inputs(t, n)
    ours = count_energy(net, [x], pooled_fc="mac")
    functional.reset_net(net)
    model = TorchModel(net)
    model.register_hooks()
    metric = nb.SynapticOperations()
    with torch.no_grad():
        preds = model(x)
    got = metric(model, preds, (torch.zeros(n),))  # per sample = per image
    functional.reset_net(net)
    first, spikes, pooled = ours.layers
    # NeuroBench: exact, mask-aware events for spikes (equal to ours) ...
    assert got["Effective_ACs"] == pytest.approx(spikes.acs, rel=1e-12)
    # ... and MACs on nonzero real inputs at every step: the image conv T times, skipping
    # the padded border taps (3x3 pad 1 on 8x8: 22 x 22 valid (output, tap) pairs per
    # channel pair, of 24 x 24 dense) that our dense count keeps, plus the pooled FC
    assert first.macs == 9 * 64 * 2 * 4
    assert got["Effective_MACs"] == pytest.approx(t * 22 * 22 * 2 * 4 + pooled.macs, rel=1e-12)
