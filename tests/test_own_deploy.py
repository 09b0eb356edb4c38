"""Issue 21, part 3: a user's model (conv -> Flatten -> Linear) through ticket export, ticket run and NIR."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli
from spikingjelly.activation_based import layer, neuron
from torch import nn

from spikingjelly_lt.deploy import compile_model
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.pruners.supermask import apply_supermask
from test_own_model import write_inputs


def test_own_model_ticket_run_exact_and_nir_in_snntorch(tmp_path, capsys, monkeypatch):
    pytest.importorskip("snntorch")
    from test_deploy import _snntorch_predictions

    net, data = write_inputs(tmp_path, n_train=600, n_test=200)
    db = tmp_path / "r.db"
    code, out, err = run_cli(["bench", "--arch", f"{net}:make", "--dataset", f"tensors:{data}", "--methods", "binw-slt",
                              "--set", "recipe.epochs=2", "--results", str(db), "--json"], capsys, monkeypatch)
    assert code == 0, err
    h = json.loads(out)["cells"][0]["config_hash"]
    ticket = tmp_path / "t.sjlt"
    code, _, err = run_cli(["ticket", "export", str(db) + f".ckpt/{h}.pt", "-o", str(ticket)], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["ticket", "run", str(ticket), "--json"], capsys, monkeypatch)
    assert code == 0, err
    run = json.loads(out)
    assert run["arch"] == f"{net}:make" and run["agreement"] == 1.0
    assert run["checks"]["engine_vs_reference"] == {"z_layers_differing": 0, "images_with_spike_difference": 0,
                                                    "prediction_differences": 0}
    nir_file = tmp_path / "t.nir"
    code, out, err = run_cli(["ticket", "export", str(ticket), "--format", "nir", "-o", str(nir_file), "--json"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["node_kinds"].get("Flatten") == 1
    from spikingjelly_lt.data import load_dataset, make_loader
    from spikingjelly_lt.deploy.run import load_model

    model, _, _ = load_model(ticket)
    compiled = compile_model(model)
    x, _ = next(iter(make_loader(load_dataset(f"tensors:{data}"), "test", 200)))
    ours = compiled(x).argmax(1)
    theirs, n_leaky = _snntorch_predictions(nir_file, x, compiled.timesteps)
    assert n_leaky == 1 and (theirs == ours).double().mean() >= 0.99


def test_compile_any_chain_and_refuse_unsupported_at_compile_time():
    torch.manual_seed(0)
    plif = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), layer.BatchNorm2d(4), neuron.ParametricLIFNode(init_tau=3.0),
                         layer.Flatten(), layer.Linear(4 * 36, 3))
    apply_supermask(plif, 0.5)
    plif.timesteps = 2
    plif.eval()
    net = compile_model(plif, engine="fp32")
    assert abs(net.ops[0].tau - 3.0) < 1e-6  # PLIF's learned tau, taken as a constant
    assert net(torch.randn(5, 1, 6, 6)).shape == (5, 3)
    bad = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), layer.BatchNorm2d(4), neuron.LIFNode(), nn.GELU(),
                        layer.Flatten(), layer.Linear(4 * 36, 3))
    apply_supermask(bad, 0.5)
    with pytest.raises(UsageError, match=r"layer 3 \(GELU\) has no exact integer form; supported: Conv2d"):
        compile_model(bad)


def test_a_hand_made_supermask_model_of_a_reference_exports_and_reloads_exactly(tmp_path):
    """A user's own module (by reference) with apply_supermask run by hand: its frozen weights do
    not regrow from the cell's seed, which export detects; those layers store sign bits."""
    import textwrap

    import torch

    from spikingjelly_lt import ticket as tk
    from spikingjelly_lt.build import DataShape
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.pruners.supermask import apply_supermask

    src = tmp_path / "handnet.py"
    src.write_text(textwrap.dedent("""
        import torch.nn as nn
        from spikingjelly.activation_based import layer, neuron, surrogate

        def make(num_classes=10, in_channels=1):
            return nn.Sequential(
                layer.Conv2d(in_channels, 8, 3, padding=1, bias=False, step_mode="m"),
                layer.BatchNorm2d(8, step_mode="m"),
                neuron.LIFNode(surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m"),
                layer.Flatten(step_mode="m"),
                layer.Linear(8 * 8 * 8, num_classes, bias=False, step_mode="m"))
    """))
    torch.manual_seed(123)  # not the cell's seed: the weights cannot regrow from it
    from spikingjelly_lt.references import load_reference

    make, _ = load_reference(f"{src}:make")
    model = apply_supermask(make(num_classes=10, in_channels=1), sparsity=0.5, binary=True)
    spec = tk.TicketSpec(Cell(method="binw-slt").with_values({"model.arch": f"{src}:make"}), DataShape(10, 1, 8))
    t = tk.export_ticket(model, tmp_path / "hand.sjlt", spec=spec)
    assert {e["source"] for e in t.header["layers"]} == {"signs"}
    loaded = tk.load_ticket(tmp_path / "hand.sjlt")
    from spikingjelly_lt.pruners.common import effective_weight, prunable_layers

    for (_, m1), (_, m2) in zip(prunable_layers(model), prunable_layers(loaded)):
        assert torch.equal(effective_weight(m1), effective_weight(m2))
