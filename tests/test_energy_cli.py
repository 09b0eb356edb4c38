"""`sjlt energy` on a user's own SpikingJelly model (--model-module) and bad input."""

from __future__ import annotations

import json
import sys

from conftest import run_cli

USER_NET = '''
from torch import nn
from spikingjelly.activation_based import functional, layer, neuron


def build():
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4), neuron.LIFNode(),
        layer.Flatten(), layer.Linear(4 * 64, 10, bias=False),
    )
    functional.set_step_mode(net, "m")
    return net


def not_a_model():
    return 3
'''


def test_energy_model_module_counts_a_user_model(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_user_net.py").write_text(USER_NET)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    code, out, err = run_cli(["energy", "--model-module", "my_user_net:build", "--images", "32",
                              "--timesteps", "3", "--json"], capsys, monkeypatch)
    assert code == 0, err
    d = json.loads(out)
    rep = d["report"]
    assert d["rules"] == rep["rules"] == "sjlt-energy/2"
    assert (rep["images"], rep["timesteps"]) == (32, 3)  # [T, N, ...] built from the images
    conv, fc = rep["layers"]
    assert conv["rule"] == "static-mac" and conv["macs"] == 9 * 64 * 4
    assert fc["rule"] == "spike-ac"
    assert rep["neurons"][0]["updates"] == 3 * 4 * 64
    assert set(d["energy_by_model"]) >= {"horowitz45", "horowitz45-neuro"}
    neuro = d["energy_by_model"]["horowitz45-neuro"]
    assert neuro["neuron_pj"] > 0 and neuro["membrane_pj"] == 3 * 256 * 64 * 10 / 64
    code, out, _ = run_cli(["energy", "--model-module", "my_user_net:build", "--images", "32"], capsys, monkeypatch)
    assert code == 0 and "membrane" in out and "static-mac" in out


def test_energy_bad_input(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_user_net.py").write_text(USER_NET)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    for spec, msg in (("my_user_net", "MODULE:CALLABLE"), ("my_user_net:nope", "cannot load"),
                      ("my_user_net:not_a_model", "not a torch nn.Module")):
        code, _, err = run_cli(["energy", "--model-module", spec], capsys, monkeypatch)
        assert code == 2 and msg in err, (spec, err)
    code, _, err = run_cli(["energy", "--model-module", "my_user_net:build", "--pooled-fc", "x"], capsys, monkeypatch)
    assert code == 2 and "pooled-fc" in err
