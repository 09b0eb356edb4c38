"""Nothing silently wrong, nothing hung (issue 26): every shown value reaches the run, kernel
builds that cannot hang, a memory guard before the first step, one owner per cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.0625", "--set", "data.limit_train=96", "--set", "data.limit_test=32",
        "--set", "recipe.epochs=0"]


# --- every key `sjlt config show` lists as used reaches the row ----------------------------

def _used_keys(method: str) -> dict:
    """{key: value} of every field `config show --json` says the method uses."""
    from spikingjelly_lt.cell import Cell, knobs
    from spikingjelly_lt.methods import resolve

    r = resolve(Cell(method=method))
    return {k: r.cell.get(k) for k, kn in knobs().items() if (not kn.conditional) or k in r.uses}


def _other_value(key: str, value):
    """A valid value for ``key`` other than ``value`` (cheap to train with)."""
    special = {"method": "snn", "sparsity": 0.75, "seed": 7, "energy_model": "horowitz45",
               "model.arch": "vgg16", "model.width": 0.125, "model.timesteps": 3, "data.dataset": "digits",
               "data.limit_train": 80, "data.limit_test": 24, "recipe.epochs": 1, "recipe.batch_size": 32,
               "recipe.precision": "fp32", "recipe.memory_format": "contiguous", "model.lif_impl": "spikingjelly",
               "model.scope": "global", "model.sign_gradient": "ste", "recipe.val_fraction": 0.2}
    if key in special:
        return special[key] if special[key] != value else {"energy_model": "horowitz45"}.get(key, value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return round(value * 0.5 + 0.01, 4) if value < 1 else value + 0.5
    return value


def test_every_used_key_set_on_train_reaches_the_stored_row(tmp_path, capsys, monkeypatch):
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.results.store import ResultStore

    db = tmp_path / "r.db"
    checked, seen = 0, set()
    plan = [(m, k, v) for m in ("binw-slt", "snn-imp") for k, v in _used_keys(m).items()]
    assert {"sparsity", "seed", "model.timesteps", "recipe.lr", "recipe.imp_rounds"} <= {k for _, k, _ in plan}
    for method, key, value in plan:
        if key in seen or key in ("method", "energy_model", "data.dataset", "recipe.precision"):
            continue  # a different method is another cell kind; one energy model / data set / precision here
        seen.add(key)
        new = _other_value(key, value)
        if new == value:
            continue
        base = {"model.width": "0.0625", "model.timesteps": "2", "data.limit_train": "96", "data.limit_test": "32",
                "recipe.epochs": "0", "recipe.batch_size": "16"}
        base.pop(key, None)
        args = ["train", "--method", method, "--results", str(db), "--json"]
        for k, v in {**base, key: new}.items():
            args += ["--set", f"{k}={v}"]
        code, out, err = run_cli(args, capsys, monkeypatch)
        assert code == 0, (key, err)
        stored = Cell.from_dict(json.loads(out)["cells"][0]["config"]).get(key)
        assert stored == new, f"--set {key}={new} stored {stored!r}"
        assert json.loads(out)["cells"][0]["status"] == "done", f"--set {key}={new} resumed another cell"
        checked += 1
    assert checked >= 20
    assert ResultStore(db).count("done") == checked


def test_grid_field_given_twice_is_refused_in_one_line(capsys, monkeypatch):
    for args in (["bench", "--set", "sparsity=0.9", "--sparsity", "0.8"], ["train", "--set", "seed=3", "--seed", "1"],
                 ["bench", "--set", "method=snn", "--methods", "ann"]):
        code, out, err = run_cli(args, capsys, monkeypatch)
        assert code == 2 and "given twice" in err and len(err.strip().splitlines()) == 1 and out == ""


def test_epochs_and_timesteps_have_ranges(capsys, monkeypatch):
    code, _, err = run_cli(["train", "--set", "recipe.epochs=1e20"], capsys, monkeypatch)
    assert code == 2 and "out of range" in err and "100000" in err


def test_memory_guard_refuses_a_step_that_cannot_fit(tmp_path, capsys, monkeypatch):
    from spikingjelly_lt.training import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 10_000_000)  # 10 MB free
    code, out, err = run_cli(["train", "--method", "snn", "--results", str(tmp_path / "r.db"), *TINY,
                              "--set", "model.timesteps=64"], capsys, monkeypatch)
    assert code == 1
    from spikingjelly_lt.results.store import ResultStore

    row = ResultStore(tmp_path / "r.db").rows()[0]
    assert row["status"] == "failed" and "GB" in row["reason"] and "model.timesteps" in row["reason"]


def test_memory_estimate_grows_linearly_with_timesteps():
    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.training.memory import estimate_step_bytes

    def est(t):
        m = build_model(arch="resnet19", method="snn", width=0.0625, input_size=8, timesteps=t, num_classes=10,
                        in_channels=1)
        return estimate_step_bytes(m, (16, 1, 8, 8))

    e2, e4, e8 = est(2), est(4), est(8)
    assert e2 < e4 < e8 and (e8 - e4) == 2 * (e4 - e2)  # exact: outputs grow by the same bytes per step
    assert isinstance(e4, int) and e4 > 16 * 8 * 8 * 4


# --- kernel builds that cannot hang --------------------------------------------------------

def test_a_stale_build_lock_does_not_hang_the_next_run(tmp_path):
    """torch's `lock` file left by a killed build made every later load wait forever."""
    from spikingjelly_lt._native import KERNELS, _build_dir, build_name

    lock = _build_dir(build_name("sjlt_lif_train", KERNELS["sjlt_lif_train"])) / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    code = ("import logging,sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
            "from spikingjelly_lt.neuron.fast_lif import _native_kernel; print(_native_kernel() is not None)")
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-800:]
    # this run removed the stale lock, or waited for another live process (holding our lock) that did
    assert ("stale build lock" in p.stderr or "waiting for another process" in p.stderr) and not lock.exists()
    assert time.time() - t0 < 300


def test_a_failed_build_is_remembered_and_not_retried(tmp_path, monkeypatch, caplog):
    """A stub kernel that cannot compile: one build attempt, then the marker answers at once."""
    import logging

    from spikingjelly_lt import _native

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    src = tmp_path / "stub.cpp"
    src.write_text('#error "stub kernel that does not compile"\n')
    with caplog.at_level(logging.INFO, logger="spikingjelly_lt"):
        assert _native.load_kernel.__wrapped__("sjlt_stub", str(src)) is None
        first = caplog.text
        caplog.clear()
        t0 = time.perf_counter()
        assert _native.load_kernel.__wrapped__("sjlt_stub", str(src)) is None
        again = time.perf_counter() - t0
    assert "building the native kernel sjlt_stub_" in first and "unavailable" in first
    assert "an earlier build failed" in caplog.text and "building" not in caplog.text
    assert again < 2.0
    src.write_text('#error "another stub"\n')  # a changed source is tried again
    with caplog.at_level(logging.INFO, logger="spikingjelly_lt"):
        caplog.clear()
        assert _native.load_kernel.__wrapped__("sjlt_stub", str(src)) is None
    assert "building the native kernel sjlt_stub_" in caplog.text


def test_a_build_past_its_time_limit_is_killed_with_its_children(tmp_path, monkeypatch):
    from spikingjelly_lt import _native

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(_native, "_CHILD", "import subprocess, sys; subprocess.Popen(['sleep', '300']); "
                                           "import time; time.sleep(300)")
    src = tmp_path / "slow.cpp"
    src.write_text("// slow\n")
    t0 = time.perf_counter()
    why = _native._build_in_child("sjlt_slow", src, timeout=2.0)
    assert "longer than 2 s" in why and time.perf_counter() - t0 < 20
    time.sleep(0.5)
    ps = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True).stdout.split()
    assert ps == [], f"orphans left: {ps}"


def test_the_kernel_build_is_outside_the_timed_epochs(tmp_path, monkeypatch):
    """A kernel loader that takes 3 s: time to ticket does not grow, the load time is recorded."""
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.neuron import fast_lif
    from spikingjelly_lt.training.trainer import run_cell

    real = fast_lif._native_kernel
    calls = []

    def slow():
        if not calls:
            time.sleep(8.0)
        calls.append(1)
        return real()

    monkeypatch.setattr(fast_lif, "_native_kernel", slow)
    cell = Cell(method="snn").with_values({"model.width": 0.0625, "model.timesteps": 2, "data.limit_train": 40,
                                           "data.limit_test": 32, "recipe.epochs": 1, "model.v_threshold": 0.5,
                                           "recipe.batch_size": 16})
    m = run_cell(cell, checkpoint=tmp_path / "c.pt")
    assert m["kernel_load_s"] >= 8.0
    assert m["time_to_ticket_s"] < 8.0 and m["train_seconds"] < 8.0  # two tiny steps


# --- disk full and unrecordable results ----------------------------------------------------

def test_a_checkpoint_write_that_fails_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import torch

    from spikingjelly_lt.errors import UsageError
    from spikingjelly_lt.training.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1})

    def full(*a, **k):  # what torch.save raises when the disk fills mid-write
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4374")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UsageError) as err:
        save_checkpoint(path, {"epoch": 2})
    msg = str(err.value)
    assert str(path) in msg and "unexpected pos" in msg and "\n" not in msg
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_trained_cell_that_cannot_be_recorded_names_its_checkpoint_and_a_rerun_records_it(
        tmp_path, capsys, monkeypatch):
    from spikingjelly_lt.errors import UsageError
    from spikingjelly_lt.results.store import ResultStore

    db = tmp_path / "r.db"
    args = ["train", "--method", "ann", "--results", str(db), *TINY, "--set", "recipe.epochs=1"]

    def full(self, h, metrics):
        raise UsageError(f"{self.path}: the disk is full")

    monkeypatch.setattr(ResultStore, "finish", full)
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "could not be recorded" in err and ".ckpt/" in err and "rerunning" in err
    monkeypatch.undo()
    monkeypatch.setenv("SJLT_EXEC_PATH", "default")
    code, out, err = run_cli([*args, "--json"], capsys, monkeypatch)
    assert code == 0, err
    cell = json.loads(out)["cells"][0]
    assert cell["status"] == "done" and cell["metrics"]["epochs_run"] == 1
    assert "resuming" in err or "round 0 epoch 1" not in err  # not trained again
