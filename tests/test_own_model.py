"""Issue 21, part 1: a user's own SpikingJelly model by reference (--arch FILE.py:make), end to end."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import run_cli

MODEL = '''
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron, surrogate


def make(num_classes, in_channels, input_size):
    net = nn.Sequential(
        layer.Conv2d(in_channels, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
        layer.Flatten(), layer.Linear(8 * input_size * input_size, num_classes),
    )
    functional.set_step_mode(net, "m")
    return net


def make_plif(num_classes, in_channels, input_size):  # single-step, PLIF, a biased classifier
    return nn.Sequential(
        layer.Conv2d(in_channels, 4, 3, padding=1), layer.BatchNorm2d(4), neuron.ParametricLIFNode(),
        layer.Flatten(), layer.Linear(4 * input_size * input_size, num_classes),
    )
'''


def write_inputs(tmp_path, n_train=400, n_test=120):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * 255 / 16).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    (tmp_path / "mynet.py").write_text(MODEL)
    data = tmp_path / "mydata.npz"
    np.savez(data, x_train=x[:n_train], y_train=y[:n_train], x_test=x[1500:1500 + n_test],
             y_test=y[1500:1500 + n_test])
    return tmp_path / "mynet.py", data


def bench(args, capsys, monkeypatch):
    code, out, err = run_cli(["bench", *args, "--json"], capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)["cells"]


def test_bench_own_model_and_tensors_and_data_identity(tmp_path, capsys, monkeypatch):
    import hashlib

    net, data = write_inputs(tmp_path)
    args = ["--arch", f"{net}:make", "--dataset", f"tensors:{data}", "--methods", "snn,binw-slt,bnn-lt,ann",
            "--set", "recipe.epochs=1", "--results", str(tmp_path / "r.db")]
    cells = bench(args, capsys, monkeypatch)
    assert [c["status"] for c in cells] == ["done"] * 4
    net_sha = hashlib.sha256(net.read_bytes()).hexdigest()
    data_sha = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    for c in cells:
        key = c["cell"]["key"]
        assert key["model"]["source"] == {"reference": f"{net}:make", "sha256": net_sha}
        assert key["data"]["fingerprint"] == data_sha
        assert c["metrics"]["data_fingerprint"] == data_sha
    # one changed pixel: the same command trains again instead of resuming
    z = dict(np.load(data))
    z["x_train"][0, 0, 0, 0] ^= 1
    np.savez(data, **z)
    again = bench([*args[:5], "snn", *args[6:]], capsys, monkeypatch)
    assert again[0]["status"] == "done" and again[0]["config_hash"] != cells[0]["config_hash"]
    assert bench([*args[:5], "snn", *args[6:]], capsys, monkeypatch)[0]["status"] == "skipped"
    code, out, _ = run_cli(["results", "show", str(tmp_path / "r.db"), cells[1]["config_hash"]], capsys, monkeypatch)
    assert code == 0 and f"model: {net}:make (sha256 {net_sha})" in out and data_sha in out


def test_user_neurons_kept_to_ann_and_inputs(tmp_path):
    from spikingjelly.activation_based import neuron

    from spikingjelly_lt.build import DataShape, build_model
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.methods import resolve
    from spikingjelly_lt.models.user import UserNet
    from spikingjelly_lt.neuron.neurons import ReLU, Sign

    net, _ = write_inputs(tmp_path)
    shape = DataShape(10, 1, 8)
    base = Cell().replace(arch=f"{net}:make_plif", timesteps=3)
    snn = build_model(resolve(base.replace(method="snn")), shape)
    slt = build_model(resolve(base.replace(method="binw-slt")), shape)
    plifs = [m for m in slt.modules() if isinstance(m, neuron.ParametricLIFNode)]
    assert isinstance(slt, UserNet) and len(plifs) == 1 and plifs[0].w.requires_grad  # a PLIF stays a trainable PLIF
    assert torch.equal(slt.net[4].bias, snn.net[4].bias) and not slt.net[4].bias.requires_grad  # bias kept, frozen
    calls = []
    snn.net[0].register_forward_hook(lambda *a: calls.append(1))
    assert snn(torch.randn(5, 1, 8, 8)).shape == (5, 10) and len(calls) == 3  # single-step: run step by step
    ann = build_model(resolve(base.replace(method="ann")), shape)
    assert not any(isinstance(m, neuron.BaseNode) for m in ann.modules()) and isinstance(ann.net[2], ReLU)
    assert isinstance(build_model(resolve(base.replace(method="bnn-act-lt")), shape).net[2], Sign)
    lif = resolve(base.replace(method="snn", neuron="lif"))
    assert "model.neuron" in lif.uses and lif.hash != resolve(base.replace(method="snn")).hash
    assert not any(isinstance(m, neuron.ParametricLIFNode) for m in build_model(lif, shape).modules())
    multi = build_model(resolve(Cell().replace(arch=f"{net}:make", method="snn", timesteps=2)), shape)
    assert multi.multi_step and multi(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_identity_follows_the_model_file_and_config_show(tmp_path, capsys, monkeypatch):
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.methods import resolve

    net, _ = write_inputs(tmp_path)
    ref = f"{net}:make"
    before = resolve(Cell().replace(arch=ref)).hash
    net.write_text(MODEL + "\n# edited\n")
    assert resolve(Cell().replace(arch=ref)).hash != before  # an edited model re-runs
    assert "source" not in resolve(Cell()).key().get("model", {})  # built-in cells: identity unchanged
    code, out, _ = run_cli(["config", "show", "--set", f"model.arch={ref}", "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["key"]["model"]["source"]["reference"] == ref
    for arch, msg in ((f"{tmp_path}/nope.py:make", "does not exist"), (f"{net}:nope", "has no attribute"),
                      ("resnet18", "or FILE.py:callable")):
        code, _, err = run_cli(["config", "show", "--set", f"model.arch={arch}"], capsys, monkeypatch)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err


def test_zoo_parametric_lif_mnistnet_runs_bench(tmp_path, capsys, monkeypatch):
    cells = bench(["--arch", "spikingjelly.activation_based.model.parametric_lif_net:MNISTNet", "--methods",
                   "snn,binw-slt", "--set", "data.resize=28", "--set", "recipe.epochs=1", "--limit-train", "96",
                   "--set", "data.limit_test=32", "--set", "recipe.batch_size=32", "--results",
                   str(tmp_path / "z.db")], capsys, monkeypatch)
    assert [c["status"] for c in cells] == ["done", "done"]
    assert cells[0]["cell"]["key"]["data"]["resize"] == 28


def test_docs_own_model_walkthrough_runs(tmp_path, capsys, monkeypatch):
    """docs/own-model.md, extracted: its model file, its data script, then every command in order."""
    import re
    import runpy
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "own-model.md").read_text()
    model_src, data_src = re.findall(r"```python\n(.*?)```", doc, re.S)[:2]
    commands = [ln.split("#")[0].strip() for ln in re.findall(r"```bash\n(.*?)```", doc, re.S)[0].splitlines()]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mynet.py").write_text(model_src)
    runpy.run_path(str(_write(tmp_path / "mkdata.py", data_src)))
    hashes = {}
    for cmd in filter(None, commands):
        args = shlex.split(cmd)[1:]
        if args[0] == "bench":
            args += ["--limit-train", "200", "--json"]
        args = [a.replace("HASH", hashes.get("binw-slt", "HASH")) for a in args]
        code, out, err = run_cli(args, capsys, monkeypatch)
        assert code == 0, (cmd, err)
        if args[0] == "bench":
            hashes = {c["config"]["method"]: c["config_hash"] for c in json.loads(out)["cells"]}
    assert (tmp_path / "my.sjlt").is_file() and (tmp_path / "my.nir").is_file()


def _write(path, text):
    path.write_text(text)
    return path


PLUGIN = '''
from spikingjelly_lt import hookimpl
from spikingjelly_lt.data import load_digits_bundle


@hookimpl
def register_datasets(register):
    register("digits-by-plugin", load_digits_bundle)
'''


def test_plugin_option_and_env_register_for_one_run(tmp_path, capsys, monkeypatch):
    import os
    import subprocess
    import sys

    from spikingjelly_lt import plugins

    plug = _write(tmp_path / "myplug.py", PLUGIN)
    try:
        code, out, err = run_cli(["--plugin", str(plug), "plugins", "--json"], capsys, monkeypatch)
        assert code == 0, err
        row = next(r for r in json.loads(out)["plugins"] if r["name"] == str(plug))
        assert row["origin"] == "--plugin" and "register_datasets" in row["hooks"]
        assert "digits-by-plugin" in plugins.names("datasets")
    finally:
        plugins.pm.unregister(name=str(plug))
    env = {**os.environ, "SJLT_PLUGINS": str(plug)}
    done = subprocess.run([sys.executable, "-m", "spikingjelly_lt", "config", "show", "--set",
                           "data.dataset=digits-by-plugin", "--json"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plugins"]["dataset"]["distribution"] == f"SJLT_PLUGINS {plug}"
    code, _, err = run_cli(["--plugin", str(tmp_path / "nope.py"), "plugins"], capsys, monkeypatch)
    assert code == 2 and "nope.py does not exist" in err


def test_a_plugin_version_joins_the_cell_identity(tmp_path):
    """A third-party component's version (a plugin file's sha256) is in the hash: an edited plugin re-runs."""
    import os
    import subprocess
    import sys

    plug = _write(tmp_path / "myplug.py", PLUGIN)

    def show() -> dict:
        done = subprocess.run([sys.executable, "-m", "spikingjelly_lt", "config", "show", "--set",
                               "data.dataset=digits-by-plugin", "--json"], capture_output=True, text=True,
                              env={**os.environ, "SJLT_PLUGINS": str(plug)}, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = show()
    assert first["key"]["plugins"]["dataset"].startswith(f"SJLT_PLUGINS {plug} ")
    plug.write_text(PLUGIN + "\n# a new release\n")
    second = show()
    assert second["hash"] != first["hash"]
    assert set(second["key"]["plugins"]) == {"dataset"}  # the package's own components add nothing
