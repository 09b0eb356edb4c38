"""Issue 21, part 3: a non-global ``nn.AvgPool2d`` in a user's graph compiles exactly.

Average pooling of spikes is kept integer (window counts, the ``1 / (kh kw)`` folded into the
next layer's scale); on a pre-activation the integer sums ``z`` are pooled before the affine
map. Checked as the other exactness tests do: every layer's integer sum (the pools' counts
included) equals float64, every spike and prediction is equal, on every engine; the compiled
program computes what the model computes; its NIR (``AvgPool2d`` nodes) agrees in snnTorch.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import run_cli
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from spikingjelly_lt._sj import reset_net
from spikingjelly_lt.deploy import compile_model, reference_forward
from spikingjelly_lt.deploy.program import AvgPool, IntConv
from spikingjelly_lt.deploy.run import compare_batch
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.models.resnet19 import BasicBlock
from spikingjelly_lt.models.user import UserNet
from spikingjelly_lt.pruners.supermask import apply_supermask
from test_deploy import ENGINES_HERE, _randomize_bn, threads  # noqa: F401 - threads: the autouse fixture


def _lif():
    return neuron.LIFNode(surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")


def _cbl(cin, cout, *pool):
    """conv-BN(-AvgPool on the pre-activation)-LIF."""
    return [layer.Conv2d(cin, cout, 3, padding=1, bias=False), layer.BatchNorm2d(cout), *pool, _lif()]


# 8x8 images, T=3; each graph ends in Flatten -> Linear (or a global pool)
GRAPHS = {
    # the SpikingJelly tutorial shape: conv-BN-LIF -> AvgPool2d(2) -> conv-BN-LIF -> Flatten -> Linear
    "spikes": lambda: [*_cbl(1, 8), layer.AvgPool2d(2), *_cbl(8, 16), layer.Flatten(), layer.Linear(16 * 16, 10)],
    # pooled pre-activations, zero padding counted (torch's default): first layer and a later conv
    "pre-activation": lambda: [*_cbl(1, 8, layer.AvgPool2d(2)), *_cbl(8, 16, layer.AvgPool2d(3, 2, 1)),
                               layer.Flatten(), layer.Linear(16 * 4, 10)],
    # overlapping windows on spikes (8 -> 7), then a pool of counts with a ragged edge (7 -> 3, counts <= 16)
    "overlap-then-pool": lambda: [*_cbl(1, 8), layer.AvgPool2d(2, 1), layer.AvgPool2d(2), *_cbl(8, 8),
                                  layer.Flatten(), layer.Linear(8 * 9, 10)],
    # padded windows on spikes (zeros counted), counts through a max pool and a global pool into the readout
    "max-and-global": lambda: [*_cbl(1, 8), layer.AvgPool2d(3, 2, 1), layer.MaxPool2d(2), *_cbl(8, 16),
                               layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(16, 10)],
    # residual blocks reading counts: an identity shortcut (counts / 4) and a 1x1 conv shortcut
    "blocks": lambda: [*_cbl(1, 8), layer.AvgPool2d(2), BasicBlock(8, 8, 1, _lif), layer.AvgPool2d(2),
                       BasicBlock(8, 16, 2, _lif), layer.Flatten(), layer.Linear(16, 10)],
}


def _user_model(graph: str, timesteps: int = 3, seed: int = 0) -> UserNet:
    """A user's multi-step SpikingJelly model with a binw-slt supermask (apply_supermask's defaults)."""
    torch.manual_seed(seed)
    net = nn.Sequential(*GRAPHS[graph]())
    functional.set_step_mode(net, "m")
    apply_supermask(net, 0.5)
    _randomize_bn(net, seed)
    return UserNet(net, timesteps).eval()


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_avgpool_graphs_exact_on_every_engine(graph):
    model = _user_model(graph)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    configs = [(e, "packed") for e in ENGINES_HERE + ["fp16"]] + [(ENGINES_HERE[-1], "int8")]
    logits = []
    for engine, storage in configs:
        net = compile_model(model, engine=engine, storage=storage)
        record: dict = {}
        logits.append(net(x, record=record))
        ref_logits, ref = reference_forward(net, x)
        sums = [k for k in ref if "z" in ref[k]]
        first_pool_on_image = graph == "pre-activation"  # the first layer's pool averages real values
        assert len(sums) == len(net.layers()) + len(pools) - first_pool_on_image, sums
        for name in sums:
            z = record[name]["z"].double()
            assert torch.equal(z, ref[name]["z"]), (engine, storage, name)
            assert torch.equal(z, z.round())  # integers
        for nrn in net.neurons():
            assert torch.equal(record[nrn.name]["spikes"], ref[nrn.name]["spikes"]), (engine, nrn.name)
        assert torch.equal(logits[-1], ref_logits), (engine, storage)
        c = compare_batch(net, model, x)  # what `ticket run` checks, the fp32 model included
        assert c["engine_vs_reference"] == {"z_layers_differing": 0, "images_with_spike_difference": 0,
                                            "prediction_differences": 0}
        assert c["model_vs_reference"]["images_with_spike_difference"] == 0
    assert all(torch.equal(v, logits[0]) for v in logits)
    # counts really are counts (> 1 somewhere), the neurons fire, and the program is the model's
    layers = {op.name for op in net.layers()}
    counted = [k for k in sums if k not in layers and ref[k]["z"].max() > 1]
    assert counted or graph == "pre-activation"
    rates = [float(ref[n.name]["spikes"].float().mean()) for n in net.neurons()]
    assert sum(0.01 < r < 0.99 for r in rates) >= len(rates) // 2, rates
    with torch.no_grad():
        out = model(x)
    reset_net(model)
    assert torch.allclose(out.double(), logits[0], atol=1e-4)


def test_avgpool_program_folds_the_scale():
    """The pool is an op of counts; the conv reading them holds 1/(kh kw) in its scale."""
    model = _user_model("spikes")
    net = compile_model(model, engine="fp32")
    pool, conv = net.ops[1], net.ops[2]
    assert isinstance(pool, AvgPool) and pool.kernel == (2, 2) and pool.div == 4
    assert isinstance(conv, IntConv) and conv.in_div == 4 and conv.in_max == 4
    unpooled = compile_model(UserNet(nn.Sequential(*[m for m in model.net if not isinstance(m, nn.AvgPool2d)]), 3),
                             engine="fp32")  # the same layers without the pool (compiled, never run)
    assert torch.allclose(conv.affine.scale64 * 4, unpooled.ops[1].affine.scale64, rtol=1e-15, atol=0)
    pre = compile_model(_user_model("pre-activation"), engine="fp32")
    assert net.stem.pool is None and pre.stem.pool.kernel == (2, 2)
    assert pre.ops[1].pool.padding == (1, 1) and pre.ops[1].in_div == 1


@pytest.mark.parametrize("pool,why", [
    (layer.AvgPool2d(2, ceil_mode=True), "ceil_mode=True"),
    (layer.AvgPool2d(2, divisor_override=3), "divisor_override=3"),
    (layer.AvgPool2d(3, 1, 1, count_include_pad=False), "count_include_pad=False with padding > 0"),
])
def test_avgpool_options_refused_at_compile_time(pool, why):
    net = nn.Sequential(*_cbl(1, 8), pool, *_cbl(8, 8), layer.Flatten(), layer.Linear(8 * 16, 10))
    apply_supermask(net, 0.5)
    net = UserNet(net, 2).eval()
    with pytest.raises(UsageError) as info:
        compile_model(net, engine="fp32")
    msg = str(info.value)
    assert msg.startswith(f"layer net.3 (AvgPool2d): {why} does not compile; supported: AvgPool2d(")
    assert "\n" not in msg
    # count_include_pad=False without padding divides every window by kh kw: it compiles
    ok = nn.Sequential(*_cbl(1, 8), layer.AvgPool2d(2, count_include_pad=False), *_cbl(8, 8), layer.Flatten(),
                       layer.Linear(8 * 16, 10))
    apply_supermask(ok, 0.5)
    assert isinstance(compile_model(UserNet(ok, 2).eval(), engine="fp32").ops[1], AvgPool)


def test_avgpool_counts_beyond_the_engine_refused_and_misplaced_pools_refused():
    from spikingjelly_lt.neuron.neurons import Sign

    big = nn.Sequential(*_cbl(1, 8), layer.AvgPool2d(12), *_cbl(8, 8), layer.Flatten(), layer.Linear(8, 10))
    apply_supermask(big, 0.5)
    big = UserNet(big, 2).eval()
    assert compile_model(big, engine="fp32").ops[2].in_max == 144
    if "int8" in ENGINES_HERE:
        with pytest.raises(UsageError, match=r"^layer net.4: its input holds average-pool counts up to 144, "
                                             r"beyond 127 \(the int8 engine's inputs\); use --engine fp32$"):
            compile_model(big, engine="int8")
    with pytest.raises(UsageError, match=r"^layer net.4: a 3x3 kernel sums 9 products of average-pool counts up "
                                         r"to 144 per channel, beyond 256 \(exact in bf16\)"):
        compile_model(big, engine="bf16")
    sign = nn.Sequential(layer.Conv2d(1, 8, 3, padding=1), layer.BatchNorm2d(8), Sign(), layer.AvgPool2d(2),
                         layer.Flatten(), layer.Linear(8 * 16, 10))
    apply_supermask(sign, 0.5)
    with pytest.raises(UsageError, match=r"^layer 3: average pooling of \+-1 sign activations"):
        compile_model(sign)
    flat = nn.Sequential(*_cbl(1, 8), layer.Flatten(), layer.AvgPool2d(2), layer.Linear(8 * 16, 10))
    apply_supermask(flat, 0.5)
    with pytest.raises(UsageError, match=r"^layer net.4: average pooling after net.3 \(Flatten\) does not compile"):
        compile_model(UserNet(flat, 2))
    # a max pool on a pre-activation is refused when compiling (it used to fail when run)
    pre_max = nn.Sequential(*_cbl(1, 8), layer.Conv2d(8, 8, 3, padding=1), layer.MaxPool2d(2), _lif(),
                            layer.Flatten(), layer.Linear(8 * 16, 10))
    apply_supermask(pre_max, 0.5)
    with pytest.raises(UsageError, match=r"^layer net.4 \(MaxPool\) reads the real-valued output of net.3"):
        compile_model(UserNet(pre_max, 2))


POOLNET = textwrap.dedent("""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():
        return neuron.LIFNode(surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")

    def make(num_classes=10, in_channels=1):
        return nn.Sequential(
            layer.Conv2d(in_channels, 8, 3, padding=1, bias=False, step_mode="m"),
            layer.BatchNorm2d(8, step_mode="m"), lif(),
            layer.AvgPool2d(2, step_mode="m"),
            layer.Conv2d(8, 16, 3, padding=1, bias=False, step_mode="m"),
            layer.BatchNorm2d(16, step_mode="m"), lif(),
            layer.Flatten(step_mode="m"),
            layer.Linear(16 * 4 * 4, num_classes, step_mode="m"))
""")


def test_avgpool_user_ticket_runs_exact_and_its_nir_agrees_in_snntorch(tmp_path, capsys, monkeypatch):
    """The user's model by reference, binw-slt supermask trained a little here (~3 s), exported as a
    ticket: `sjlt ticket run` is exact against float64 and its NIR (an AvgPool2d node, the next
    conv's weights unscaled) agrees with the engine in snnTorch on >= 99 % of the test images."""
    pytest.importorskip("nir")
    pytest.importorskip("snntorch")
    from sklearn.datasets import load_digits

    from spikingjelly_lt import ticket as tk
    from spikingjelly_lt.build import DataShape
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.data import load_dataset, make_loader
    from spikingjelly_lt.references import load_reference
    from test_deploy import _snntorch_predictions

    src = tmp_path / "poolnet.py"
    src.write_text(POOLNET)
    d = load_digits()
    x = (d.images * 255 / 16).astype(np.uint8)[:, None]
    data = tmp_path / "digits8.npz"
    np.savez(data, x_train=x[:1200], y_train=d.target[:1200], x_test=x[1500:], y_test=d.target[1500:])
    bundle = load_dataset(f"tensors:{data}")
    make, _ = load_reference(f"{src}:make")
    torch.manual_seed(0)
    model = UserNet(apply_supermask(make(num_classes=10, in_channels=1)), 4)  # the cell's T (4)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for _ in range(3):
        for xb, yb in make_loader(bundle, "train", 100):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            reset_net(model)
    model.eval()
    spec = tk.TicketSpec(Cell(method="binw-slt").with_values({"model.arch": f"{src}:make"}), DataShape(10, 1, 8))
    ticket = tmp_path / "pool.sjlt"
    tk.export_ticket(model, ticket, spec=spec)
    code, out, err = run_cli(["ticket", "run", str(ticket), "--dataset", f"tensors:{data}", "--json"], capsys,
                             monkeypatch)
    assert code == 0, err
    run = json.loads(out)
    assert run["images"] == 297 and run["top1_engine"] > 0.6, run["top1_engine"]
    assert run["checks"]["engine_vs_reference"] == {"z_layers_differing": 0, "images_with_spike_difference": 0,
                                                    "prediction_differences": 0}
    mv = run["checks"]["model_vs_reference"]
    assert mv["traced_within_tol"] == mv["images_with_spike_difference"] and run["agreement"] >= 0.99
    nir_file = tmp_path / "pool.nir"
    code, out, err = run_cli(["ticket", "export", str(ticket), "--format", "nir", "-o", str(nir_file), "--json"],
                             capsys, monkeypatch)
    assert code == 0, err
    kinds = json.loads(out)["node_kinds"]
    assert kinds["AvgPool2d"] == 1 and kinds["Conv2d"] == 2 and kinds["LIF"] == 2
    compiled = compile_model(tk.load_ticket(ticket))
    xt, _ = next(iter(make_loader(bundle, "test", 297)))
    ours = compiled(xt).argmax(1)
    theirs, n_leaky = _snntorch_predictions(nir_file, xt, compiled.timesteps)
    agree = float((theirs == ours).double().mean())
    with capsys.disabled():
        print(f"\n[deploy] AvgPool2d user ticket: top-1 {run['top1_engine']:.4f}, engine vs float64 exact, "
              f"snnTorch agreement {agree:.4f}")
    assert n_leaky == 2 and agree >= 0.99


@pytest.mark.parametrize("graph", ["pre-activation", "overlap-then-pool"])
def test_avgpool_nir_placements_agree_in_snntorch(graph, tmp_path):
    """Pools on pre-activations (the first layer's, and a padded one after a conv) and stacked,
    overlapping pools on spikes: snnTorch runs the NIR graph to the engine's predictions."""
    nir = pytest.importorskip("nir")
    pytest.importorskip("snntorch")
    from spikingjelly_lt.deploy.nir_export import to_nir
    from test_deploy import _snntorch_predictions

    net = compile_model(_user_model(graph), engine="fp32")
    graph_ = to_nir(net, (1, 8, 8))
    assert sum(isinstance(n, nir.AvgPool2d) for n in graph_.nodes.values()) == 2
    nir.write(str(tmp_path / "g.nir"), graph_)
    x = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = net(x).argmax(1)
    theirs, _ = _snntorch_predictions(tmp_path / "g.nir", x, net.timesteps)
    assert len(ours.unique()) >= 3 and (theirs == ours).double().mean() >= 0.99
