"""The plugin system: registries, throwaway plugins, failures, and real entry points."""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spikingjelly_lt import hookimpl, plugins
from spikingjelly_lt.errors import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
KINDS = {
    "pruners": {"dense", "imp", "supermask"},
    "neurons": {"lif", "if", "relu", "sign"},
    "architectures": {"resnet19", "vgg16"},
    "datasets": {"digits", "cifar10", "cifar100"},
}


def test_builtins_registered():
    for kind, expected in KINDS.items():
        assert expected <= set(plugins.names(kind))
    assert plugins.registry("pruners")["imp"].plugin == "spikingjelly_lt.pruners.imp"


def test_throwaway_plugin_registers_and_duplicates_are_rejected(caplog):
    class Plugin:
        @hookimpl
        def register_pruners(self, register):
            register("throwaway", lambda model, sparsity, **kw: model)

    class Duplicate:
        @hookimpl
        def register_pruners(self, register):
            register("dense", lambda model, sparsity, **kw: model)

    plugins.pm.register(Plugin(), name="throwaway")
    plugins.pm.register(Duplicate(), name="duplicate")
    try:
        with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
            reg = plugins.registry("pruners")
        assert "throwaway" in reg and reg["throwaway"].plugin == "throwaway"
        assert reg["dense"].plugin == "spikingjelly_lt.pruners.dense"
        assert any("duplicate" in r.getMessage() and "already registered" in r.getMessage() for r in caplog.records)
    finally:
        plugins.pm.unregister(name="throwaway")
        plugins.pm.unregister(name="duplicate")
    assert "throwaway" not in plugins.names("pruners")


def test_a_plugin_that_raises_is_one_warning_and_the_rest_works(caplog):
    class Broken:
        @hookimpl
        def register_neurons(self, register):
            raise RuntimeError("boom")

    plugins.pm.register(Broken(), name="broken")
    try:
        with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
            names = plugins.names("neurons")
        assert {"lif", "relu"} <= set(names)
        msgs = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
        assert len(msgs) == 1 and "RuntimeError: boom" in msgs[0] and "\n" not in msgs[0]
    finally:
        plugins.pm.unregister(name="broken")


def test_hooks_run_once_until_a_plugin_registers(caplog):
    calls = []

    class Counting:
        @hookimpl
        def register_neurons(self, register):
            calls.append(1)
            raise RuntimeError("boom")

    class Late:
        @hookimpl
        def register_neurons(self, register):
            register("late-neuron", lambda **kw: None)

    plugins.pm.register(Counting(), name="counting")
    try:
        with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
            for _ in range(5):
                plugins.lookup("neurons", "lif")
                plugins.names("neurons")
        assert len(calls) == 1
        assert len([r for r in caplog.records if "counting" in r.getMessage()]) == 1
        plugins.pm.register(Late(), name="late")  # what --plugin / SJLT_PLUGINS do: the registry is built again
        try:
            assert "late-neuron" in plugins.names("neurons") and len(calls) == 2
        finally:
            plugins.pm.unregister(name="late")
        assert "late-neuron" not in plugins.names("neurons")
    finally:
        plugins.pm.unregister(name="counting")


def test_unknown_lookup_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        plugins.lookup("datasets", "mnist")
    assert str(info.value) == ("unknown dataset 'mnist'; valid: " + ", ".join(plugins.names("datasets"))
                               + ", or tensors:PATH, imagefolder:DIR, frames:PATH, pkg.module:callable")
    with pytest.raises(UnknownNameError, match="valid: architectures, datasets"):
        plugins.registry("losses")


def _write_dist(site: Path, dist: str, module_src: dict[str, str], entry: str) -> None:
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[spikingjelly_lt]\n{entry}\n")
    for name, src in module_src.items():
        (site / name).write_text(textwrap.dedent(src))


def _run(code: str, site: Path, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_entry_point_distribution_discovered_listed_and_applied(tmp_path):
    _write_dist(
        tmp_path,
        "sjlt-hello",
        {
            "sjlt_hello.py": """
            import torch
            from spikingjelly_lt import hookimpl
            from spikingjelly_lt.pruners.common import prunable_layers

            def first_k(model, sparsity, **_):
                for _, m in prunable_layers(model):
                    w = m.weight.data.view(-1)
                    w[: round(sparsity * w.numel())] = 0
                return model

            @hookimpl
            def register_pruners(register):
                register("first-k", first_k)
            """,
            "sjlt_broken.py": "raise ImportError('missing dependency xyz')\n",
        },
        "hello = sjlt_hello\nbroken = sjlt_broken",
    )
    code = """
import json, sys, torch
from typer.testing import CliRunner
from spikingjelly_lt.cli import app
from spikingjelly_lt.cli import plugins_cmd
from spikingjelly_lt import plugins
from spikingjelly_lt.pruners.common import sparsity_report
res = CliRunner().invoke(app, ["plugins", "--json"])
data = json.loads(res.stdout)
model = plugins.lookup("pruners", "first-k")(torch.nn.Linear(10, 10), 0.3)
print(json.dumps({"data": data, "sparsity": sparsity_report(model)["sparsity"], "stderr": res.stderr}))
"""
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {p["name"]: p for p in out["data"]["plugins"]}
    assert rows["hello"]["distribution"] == "sjlt-hello" and rows["hello"]["version"] == "0.3.0"
    assert rows["hello"]["hooks"] == ["register_pruners"]
    assert out["data"]["registered"]["pruners"]["first-k"] == "hello"
    assert out["sparsity"] == pytest.approx(0.3)
    assert "broken" not in rows and "plugin broken failed" in out["stderr"] and "missing dependency xyz" in out["stderr"]
    proc = _run(code.replace('plugins.lookup("pruners", "first-k")(torch.nn.Linear(10, 10), 0.3)', "torch.nn.Linear(10, 10)"), tmp_path, {"SJLT_DISABLE_ENTRY_POINTS": "1"})
    assert "hello" not in json.loads(proc.stdout.strip().splitlines()[-1])["data"]["registered"]["pruners"].values()


def test_example_plugin_distribution_random_prune(tmp_path):
    """plugins/sjlt-random-prune through its entry point (installed, or a dist-info we write)."""
    import importlib.metadata as md

    try:
        md.distribution("sjlt-random-prune")
        site = tmp_path
    except md.PackageNotFoundError:
        src = (ROOT / "plugins/sjlt-random-prune/sjlt_random_prune/__init__.py").read_text()
        (tmp_path / "sjlt_random_prune").mkdir()
        _write_dist(tmp_path, "sjlt-random-prune", {"sjlt_random_prune/__init__.py": src}, "random_prune = sjlt_random_prune")
        site = tmp_path
    code = """
import json, torch
from spikingjelly_lt import plugins
from spikingjelly_lt.pruners.common import sparsity_report
info = {p["name"]: p for p in plugins.plugin_info()}
m = plugins.lookup("pruners", "random")(torch.nn.Sequential(torch.nn.Linear(20, 10), torch.nn.Linear(10, 5)), 0.6, seed=1)
rep = sparsity_report(m)
print(json.dumps({"dist": info["random_prune"]["distribution"], "layers": [l["zeros"] for l in rep["layers"]]}))
"""
    proc = _run(code, site)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["dist"] == "sjlt-random-prune"
    assert out["layers"] == [120, 30]  # exactly 60% of 200 and of 50
