"""Energy counts against hand computations on tiny nets (docs/energy.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from spikingjelly_lt import plugins
from spikingjelly_lt._sj import layer, neuron
from spikingjelly_lt.energy import (
    HOROWITZ45,
    HOROWITZ45_INT,
    HOROWITZ45_MEM,
    EnergyCounter,
    count_energy,
    energy_ratio,
    energy_under,
    saving,
)
from spikingjelly_lt.energy.sj_adapter import op_counter_counts
from spikingjelly_lt.errors import UnknownNameError

MEM_PJ_PER_BIT = 10.0 / 64


class Root(nn.Module):
    """A root module with ``timesteps``; direct encoding repeats the image T times."""

    def __init__(self, body: nn.Module, timesteps: int | None):
        super().__init__()
        self.timesteps = timesteps
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.timesteps:
            x = x.unsqueeze(0).repeat(self.timesteps, 1, 1, 1, 1)
        return self.body(x)


class FixedSpikes(nn.Module):
    """Ignores its input and emits a fixed spike tensor ``[T, N, ...]``."""

    def __init__(self, spikes: torch.Tensor):
        super().__init__()
        self.register_buffer("spikes", spikes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spikes


def images(n: int, c: int = 2, h: int = 6, w: int = 6) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(n))


def spike_pattern(t: int, n: int, c: int, h: int, w: int, positions) -> torch.Tensor:
    s = torch.zeros(t, n, c, h, w)
    for idx in positions:
        s[idx] = 1.0
    return s


def lif() -> nn.Module:
    return neuron.LIFNode(tau=2.0, step_mode="m")


# ---------------------------------------------------------------- ANN


@pytest.mark.parametrize(
    "stride,padding,size,h_out", [(1, 0, 6, 4), (2, 1, 7, 4), (1, 1, 5, 5), (2, 0, 7, 3)]
)
def test_ann_conv_macs(stride, padding, size, h_out):
    c_in, c_out, k = 2, 3, 3
    net = Root(nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding), nn.ReLU()), None)
    batches = [images(3, c_in, size, size), images(2, c_in, size, size)]
    rep = count_energy(net, batches)
    (row,) = rep.layers
    assert rep.images == 5
    assert row.macs == k * k * h_out * h_out * c_in * c_out
    assert row.acs == 0 and row.op_kind == "MAC" and row.input_kind == "real"
    assert rep.energy_pj == pytest.approx(4.6 * row.macs)
    assert rep.model == "horowitz45"


def test_ann_linear_and_sign_inputs():
    lin = layer.Linear(8, 5, step_mode="s")
    net = Root(nn.Sequential(nn.Flatten(), lin), None)
    rep = count_energy(net, [torch.randn(4, 2, 2, 2)])
    assert rep.layers[0].macs == 8 * 5 and rep.layers[0].op_kind == "MAC"
    signs = torch.randn(4, 2, 2, 2).sign()  # a BinAct layer feeds ±1: every input adds
    rep = count_energy(net, [signs])
    assert rep.layers[0].acs == 8 * 5 and rep.layers[0].macs == 0
    assert rep.layers[0].input_kind == "sign"


def test_grouped_conv():
    net = Root(nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), None)
    rep = count_energy(net, [torch.randn(1, 4, 5, 5)])
    assert rep.macs == 9 * 25 * 4 * 6 / 2


# ---------------------------------------------------------------- SNN, spikes


def two_layer_snn(spikes: torch.Tensor, c_out: int = 4, classes: int = 3):
    t, n, c, h, w = spikes.shape
    conv = layer.Conv2d(c, c_out, 3, padding=1, bias=False, step_mode="m")
    fc = layer.Linear(c_out * h * w, classes, bias=False, step_mode="m")
    body = nn.Sequential(
        FixedSpikes(spikes), conv, lif(), layer.Flatten(step_mode="m"), fc
    )
    return Root(body, t), conv, fc


def test_snn_spike_acs_hand_count():
    torch.manual_seed(0)
    t, n, c, h, w = 3, 2, 2, 5, 5
    pos = [(0, 0, 0, 2, 2), (0, 1, 1, 1, 3), (1, 0, 1, 3, 1), (2, 1, 0, 2, 2), (2, 1, 1, 1, 1)]
    spikes = spike_pattern(t, n, c, h, w, pos)
    net, conv, fc = two_layer_snn(spikes)
    conv.weight.data.mul_(20)  # make the LIF fire
    fired = []
    net.body[2].register_forward_hook(lambda m, a, o: fired.append(int(o.count_nonzero())))
    rep = count_energy(net, [torch.zeros(n, 1, 1, 1)])
    r_conv, r_fc = rep.layers
    # conv: each spike reaches k²·C_out = 9·4 synapses; 5 spikes over 2 images
    assert r_conv.acs == 5 * 9 * 4 / n
    assert r_conv.input_kind == "spike" and r_conv.op_kind == "AC" and r_conv.macs == 0
    assert r_conv.firing_rate == pytest.approx(5 / spikes.numel())
    # fc: each LIF spike reaches 3 outputs
    assert fired[0] > 0
    assert r_fc.acs == fired[0] * 3 / n
    assert rep.acs == r_conv.acs + r_fc.acs
    assert rep.energy_pj == pytest.approx(0.9 * rep.acs)
    slots = spikes.numel() + t * n * 4 * h * w
    assert rep.mean_firing_rate == pytest.approx((5 + fired[0]) / slots)
    assert set(rep.firing_rates) == {r_conv.name, r_fc.name}
    # same as op_counter's exact SynOps: every spike is away from the padded border
    ref = op_counter_counts(conv, spikes)
    assert ref.synops == 5 * 9 * 4


def brute_force_events(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Σ over nonzero inputs of the nonzero synapses they feed, by loops (no conv, no autograd)."""
    from spikingjelly_lt.pruners.common import effective_weight

    w = effective_weight(conv) != 0
    c_out, c_in_g, k, _ = w.shape
    (s,), (p,) = set(conv.stride), set(conv.padding)
    h, wd = x.shape[-2:]
    h_out, w_out = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    fan = torch.zeros(x.shape[-3], h, wd, dtype=torch.int64)
    for o in range(c_out):
        for c in range(c_in_g):
            for i in range(k):
                for j in range(k):
                    if not w[o, c, i, j]:
                        continue
                    for y in range(h_out):
                        for z in range(w_out):
                            yy, zz = y * s - p + i, z * s - p + j
                            if 0 <= yy < h and 0 <= zz < wd:
                                fan[c, yy, zz] += 1
    nz = (x != 0).reshape(-1, *x.shape[-3:]).sum(0)
    return int((nz * fan).sum())


def test_zero_spikes_zero_acs():
    spikes = torch.zeros(4, 2, 2, 5, 5)
    net, _, _ = two_layer_snn(spikes)
    rep = count_energy(net, [torch.zeros(2, 1, 1, 1)])
    assert rep.acs == 0 and rep.macs == 0 and rep.energy_pj == 0
    assert rep.mean_firing_rate == 0
    assert [r.op_kind for r in rep.layers] == ["AC", "AC"]


def test_half_masked_layer_half_the_acs():
    torch.manual_seed(1)
    spikes = (torch.rand(2, 3, 2, 5, 5) < 0.3).float()
    dense_net, conv, _ = two_layer_snn(spikes)
    dense = count_energy(dense_net, [torch.zeros(3, 1, 1, 1)]).layers[0].acs
    mask = torch.zeros(conv.weight.numel())
    mask[::2] = 1
    prune.custom_from_mask(conv, "weight", mask.view_as(conv.weight))
    row = count_energy(dense_net, [torch.zeros(3, 1, 1, 1)]).layers[0]
    assert row.weight_density == 0.5
    # exact: each spike reaches only the nonzero synapses it feeds (brute-force count)
    assert row.acs * 3 == brute_force_events(conv, spikes)
    assert row.acs == pytest.approx(dense / 2, rel=0.05)  # about half, not exactly


def test_linear_acs_match_op_counter():
    torch.manual_seed(2)
    fc = layer.Linear(10, 7, bias=False, step_mode="m")
    spikes = (torch.rand(3, 4, 10) < 0.4).float()
    net = Root(nn.Sequential(FixedSpikes(spikes), fc), 3)
    rep = count_energy(net, [torch.zeros(4, 1, 1, 1)])
    assert rep.acs * 4 == op_counter_counts(fc, spikes).synops == spikes.sum() * 7


# ---------------------------------------------------------------- SNN, direct encoding


def test_direct_encoding_first_layer_macs_once():
    torch.manual_seed(3)
    c_in, c_out, k, hw = 2, 4, 3, 6
    conv1 = layer.Conv2d(c_in, c_out, k, padding=1, bias=False, step_mode="m")
    conv2 = layer.Conv2d(c_out, c_out, k, padding=1, bias=False, step_mode="m")
    for t in (1, 4):
        net = Root(nn.Sequential(conv1, lif(), conv2, lif()), t)
        rep = count_energy(net, [images(3, c_in, hw, hw)])
        first = rep.layers[0]
        if t > 1:  # the same image at every step: MACs once, not T times
            assert first.macs == k * k * hw * hw * c_in * c_out
            assert first.input_kind == "static" and first.firing_rate is None
        else:  # T = 1: indistinguishable from a graded input, nonzero inputs x their fan-out
            assert first.input_kind == "graded"
            assert first.macs * 3 == brute_force_events(conv1, images(3, c_in, hw, hw))
        assert first.acs == 0 and first.op_kind == "MAC"
        assert rep.layers[1].op_kind == "AC"
    # op_counter charges the static image T times (why we count it ourselves)
    x = images(3, c_in, hw, hw).unsqueeze(0).repeat(4, 1, 1, 1, 1)
    assert op_counter_counts(conv1, x).macs == 4 * 3 * first.macs


def test_graded_inputs_count_nonzero_as_macs():
    fc = layer.Linear(4, 3, bias=False, step_mode="m")
    x = torch.tensor([[[0.0, 0.25, 0.0, 0.5]], [[0.0, 0.0, 0.0, 0.75]]])  # [T=2, N=1, 4]
    net = Root(nn.Sequential(FixedSpikes(x), fc), 2)
    row = count_energy(net, [torch.zeros(1, 1, 1, 1)]).layers[0]
    assert row.input_kind == "graded" and row.op_kind == "MAC"
    assert row.macs == 3 * 3 and row.acs == 0
    assert row.firing_rate == 3 / 8


# ---------------------------------------------------------------- cost models


def binary_weights(module: nn.Module, alpha: float, zero_every: int = 0) -> int:
    """Set ±alpha weights (every ``zero_every``-th one zero); return the nonzero count."""
    w = torch.randn(module.weight.shape, generator=torch.Generator().manual_seed(7)).sign()
    w = alpha * w
    if zero_every:
        w.view(-1)[::zero_every] = 0
    module.weight.data.copy_(w)
    return int(w.count_nonzero())


class BinaryNet(nn.Module):
    """conv1 (±alpha, dense) on the direct-encoded image; conv2 (±alpha, pruned) on
    fixed spikes; fc (fp32) on the same spikes."""

    def __init__(self, spikes: torch.Tensor):
        super().__init__()
        self.timesteps = spikes.shape[0]
        self.conv1 = layer.Conv2d(2, 3, 3, padding=1, bias=False, step_mode="m")
        self.conv2 = layer.Conv2d(2, 4, 3, padding=1, bias=False, step_mode="m")
        self.fc = layer.Linear(2 * 5 * 5, 3, bias=False, step_mode="m")
        self.register_buffer("spikes", spikes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.timesteps, 1, 1, 1, 1)
        a = self.conv1(x).mean()
        b = self.conv2(self.spikes).mean()
        return a + b + self.fc(self.spikes.flatten(2)).mean()


def binary_net():
    pos = [(0, 0, 0, 2, 2), (1, 0, 1, 1, 1), (1, 0, 0, 3, 3)]
    spikes = spike_pattern(2, 1, 2, 5, 5, pos)
    net = BinaryNet(spikes)
    binary_weights(net.conv1, 0.3)
    nz2 = binary_weights(net.conv2, 0.7, zero_every=4)  # 72 weights, 18 zeros
    return net, nz2


def test_int_model_binary_snn_hand_value():
    net, nz2 = binary_net()
    d2 = nz2 / net.conv2.weight.numel()
    assert d2 == 0.75
    rep = count_energy(net, [torch.randn(1, 2, 5, 5)], "horowitz45-int")
    c1, c2, fc = rep.layers
    assert (c1.binary, c2.binary, fc.binary) == (True, True, False)
    macs1 = 9 * 25 * 2 * 3
    acs2 = brute_force_events(net.conv2, net.spikes)  # 3 interior spikes, nonzero synapses only
    assert acs2 == pytest.approx(3 * 9 * 4 * d2, rel=0.2)
    acs_fc = 3 * 3
    assert (c1.macs, c2.acs, fc.acs) == (macs1, acs2, acs_fc)
    # binary: real input into ±alpha = fp32 add 0.9, spike into ±alpha = int add 0.1;
    # the fp32 fc keeps the fp32 add 0.9
    assert rep.energy_pj == pytest.approx(0.9 * macs1 + 0.1 * acs2 + 0.9 * acs_fc)
    assert rep.model == "horowitz45-int"
    fp = energy_under(rep, "horowitz45")
    assert fp.energy_pj == pytest.approx(4.6 * macs1 + 0.9 * acs2 + 0.9 * acs_fc)
    assert fp.model == "horowitz45" and fp.acs == rep.acs and fp.macs == rep.macs


def test_mem_model_adds_bits_times_reads():
    net, _ = binary_net()
    rep = count_energy(net, [torch.randn(2, 2, 5, 5)], HOROWITZ45)
    c1, c2, fc = rep.layers
    assert (c1.weight_bits, c1.mask_bits) == (1, 0)  # binary, dense
    assert (c2.weight_bits, c2.mask_bits) == (1, 1)  # binary, pruned: sign + mask
    assert (fc.weight_bits, fc.mask_bits) == (32, 0)
    assert (c1.storage, c2.storage, fc.storage) == ("sign", "sign-mask", "dense-fp32")
    bits = (54 * 1 + 32) + (72 * 2 + 32) + 150 * 32  # signs (+ masks) + one fp32 alpha each
    assert sum(r.stored_bits for r in rep.layers) == bits
    mem = energy_under(rep, HOROWITZ45_MEM)
    assert mem.energy_mem_pj == pytest.approx(bits * MEM_PJ_PER_BIT)
    assert mem.energy_pj == pytest.approx(rep.energy_pj + bits * 10 / 64)
    assert rep.energy_mem_pj == 0


def test_plugin_lookup():
    assert plugins.lookup("energy_models", "horowitz45") is HOROWITZ45
    assert plugins.lookup("energy_models", "horowitz45-int") is HOROWITZ45_INT
    assert plugins.lookup("energy_models", "horowitz45-mem") is HOROWITZ45_MEM
    assert plugins.registry("energy_models")["horowitz45"].plugin == (
        "spikingjelly_lt.energy.cost_models"
    )
    with pytest.raises(UnknownNameError, match="horowitz45"):
        plugins.lookup("energy_models", "no-such-model")
    assert (HOROWITZ45.mac_pj, HOROWITZ45.ac_pj, HOROWITZ45_INT.binary_ac_pj) == (4.6, 0.9, 0.1)


# ---------------------------------------------------------------- API


def test_counter_context_matches_count_energy_and_ratios():
    from spikingjelly_lt._sj import reset_net

    torch.manual_seed(4)
    body = nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"), lif(),
        layer.Conv2d(4, 4, 3, padding=1, step_mode="m"), lif(),
        layer.Flatten(step_mode="m"), layer.Linear(4 * 36, 3, step_mode="m"),
    )  # fmt: skip
    snn = Root(body, 4).eval()
    batches = [images(2), images(3)]
    with torch.no_grad(), EnergyCounter(snn) as counter:
        for x in batches:
            snn(x)
            reset_net(snn)
    rep = counter.report()
    again = count_energy(snn, batches)
    assert rep.images == 5 and again.acs == pytest.approx(rep.acs) and again.macs == rep.macs
    ann = Root(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU()), None)
    ann_rep = count_energy(ann, batches)
    r = {"x_ann": energy_ratio(ann_rep, rep), "x_snn": energy_ratio(again, rep)}
    assert r["x_snn"] == pytest.approx(1.0)
    assert r["x_ann"] == pytest.approx(ann_rep.energy_pj / rep.energy_pj)
    assert energy_ratio(ann_rep, rep, "horowitz45-int") == pytest.approx(r["x_ann"])
    assert r["x_ann"] == saving(ann_rep.energy_pj, rep.energy_pj)
    assert saving(None, 1.0) is None and saving(2.0, 0.0) is None and saving(0.0, 1.0) is None
    d = rep.to_dict()
    assert d["model"] == "horowitz45" and d["layers"][0]["stored_bits"] == 4 * 2 * 9 * 32
    assert d["rules"] == "sjlt-energy/2" and d["options"] == {"pooled_fc": "ac", "binary_synapse": "fp32-add"}


def test_time_folded_into_batch_and_kind_warning(caplog):
    # a plain Conv2d inside SeqToANNContainer sees [T*N, C, H, W]: T comes from the root's N
    conv = nn.Conv2d(2, 3, 3, bias=False)
    net = Root(nn.Sequential(layer.SeqToANNContainer(conv), lif()), 4)
    row = count_energy(net, [images(2, 2, 5, 5)]).layers[0]
    assert row.input_kind == "static" and row.macs == 9 * 9 * 2 * 3

    fc = layer.Linear(4, 2, bias=False, step_mode="m")
    src = FixedSpikes(torch.ones(2, 1, 4))
    net = Root(nn.Sequential(src, fc), 2)
    with EnergyCounter(net) as counter:
        net(torch.zeros(1, 1, 1, 1))
        src.spikes.fill_(0.5)  # no longer spikes
        net(torch.zeros(1, 1, 1, 1))
    with caplog.at_level("WARNING", logger="spikingjelly_lt"):
        rep = counter.report()
    assert rep.layers[0].input_kind == "spike"
    assert "classified 'spike'" in caplog.text


def test_silent_first_batch_does_not_fix_the_kind():
    fc = layer.Linear(4, 2, bias=False, step_mode="m")
    src = FixedSpikes(torch.zeros(2, 1, 4))
    net = Root(nn.Sequential(src, fc), 2)
    with EnergyCounter(net) as counter:
        net(torch.zeros(1, 1, 1, 1))  # silent: all zeros
        src.spikes.copy_(torch.tensor([[[0.0, 0.25, 0.5, 0.0]], [[0.0, 0.0, 0.0, 0.0]]]))
        net(torch.zeros(1, 1, 1, 1))  # graded (avg-pooled spikes)
    row = counter.report().layers[0]
    assert row.input_kind == "graded" and row.macs == 2 * 2 / 2
    assert row.firing_rate == 2 / 16


# ---------------------------------------------------------------- exactness of the cheap reductions


def test_spike_sums_exact_past_float32_integers():
    from spikingjelly_lt.energy.counter import _F32_EXACT, _spike_sums

    n = _F32_EXACT + 3  # one float32 sum would stop counting at 2**24
    x = torch.ones(n)
    total, check = _spike_sums(x, True)
    assert total.dtype == torch.float64 and int(total) == n and float(check) == 0
    x[-1] = 0.5  # a graded value in the last chunk is seen by the check
    total, check = _spike_sums(x, True)
    assert float(check) == -0.25 and _spike_sums(x, False)[1] is None


def test_totals_sum_mixed_dtypes_per_slot():
    from spikingjelly_lt.energy.counter import _totals

    parts = [
        [torch.tensor(3.0), torch.tensor(2**24, dtype=torch.float64)],
        [],
        [torch.tensor(5), torch.tensor(True), torch.tensor(1.5)],
    ]
    assert _totals(parts) == [2**24 + 3.0, 0.0, 7.5]
    assert _totals([[], []]) == [0.0, 0.0]


def test_large_spike_layer_counted_exactly():
    # [T=2, N=1, 1, 3000, 3000] spikes: 18e6 inputs, more than float32 counts exactly
    t, hw = 2, 3000
    spikes = torch.zeros(t, 1, 1, hw, hw)
    spikes[0, 0, 0, :, ::2] = 1.0  # 4.5e6 spikes
    spikes[1, 0, 0, ::3] = 1.0  # 1000 rows of 3000
    n_spikes = hw * hw // 2 + (hw // 3) * hw
    conv = layer.Conv2d(1, 2, 1, bias=False, step_mode="m")
    row = count_energy(Root(nn.Sequential(FixedSpikes(spikes), conv), t), [torch.zeros(1, 1, 1, 1)]).layers[0]
    assert row.input_kind == "spike"
    assert row.acs == n_spikes * 2  # 1x1 kernel, 2 output channels
    assert row.firing_rate == n_spikes / spikes.numel()


def test_weight_stats_binary_and_density():
    from spikingjelly_lt.energy.counter import weight_stats

    fc = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[0.5, -0.5, 0.0, 0.5], [0.0, 0.0, -0.5, 0.5], [0.5, 0.5, 0.5, 0.0]]))
    assert weight_stats(fc) == (12, 8, True)
    with torch.no_grad():
        fc.weight[0, 0] = 0.25
    assert weight_stats(fc) == (12, 8, False)
    prune.l1_unstructured(fc, "weight", amount=5)  # the mask drops the 4 zeros and the 0.25
    assert weight_stats(fc) == (12, 7, True)  # the weight that runs, not weight_orig


def test_position_map_channels_last_and_bool():
    from spikingjelly_lt.energy.counter import _position_map

    x = (torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(9)) < 0.3).float()
    want = x.sum(0)
    assert torch.equal(_position_map(x, 3), want)
    assert torch.equal(_position_map(x.contiguous(memory_format=torch.channels_last), 3), want)
    assert torch.equal(_position_map(x != 0, 3), want)
    assert torch.equal(_position_map(x.transpose(2, 3), 3), x.transpose(2, 3).sum(0))  # other strides


def test_spike_counts_are_exact_under_a_bf16_autocast():
    """Issue 22, bug 8: evaluation runs under bf16 autocast; the counting GEMV must not round.

    The counter's per-position map of a {0,1} input whose column sums exceed 256 (bf16 keeps 8
    significant bits: 317 -> 316) equals the exact count, inside and outside autocast, and the
    counted ACs of a spiking layer are the same under autocast as without it."""
    from spikingjelly_lt.energy.counter import _position_map

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(600, 3, 4, 4, generator=g) < 0.55).float()  # counts ~330 per position
    exact = x.sum(0)
    assert (exact > 256).any() and (exact.remainder(2) == 1).any()  # bf16 could not hold these
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = _position_map(x, 3)
    assert under.dtype == torch.float32 and torch.equal(under, exact)
    assert torch.equal(_position_map(x.contiguous(memory_format=torch.channels_last), 3), exact)
    t, n, c, h, w = 2, 300, 2, 5, 5
    spikes = (torch.rand(t, n, c, h, w, generator=g) < 0.5).float()
    net, conv, _ = two_layer_snn(spikes)
    plain = count_energy(net, [torch.zeros(n, 1, 1, 1)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = count_energy(net, [torch.zeros(n, 1, 1, 1)])
    assert auto.layers[0].acs == plain.layers[0].acs == brute_force_events(conv, spikes) / n
