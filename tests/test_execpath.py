"""The execution path chosen by measurement (issue 23): candidates, the choice rule, the cache,
resume on the recorded path, the bf16 warning, and tuning outside the timed epochs."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch

from spikingjelly_lt.build import DataShape, build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.training import execpath
from spikingjelly_lt.training.execpath import ExecPath, resolve_exec_path

CPU = torch.device("cpu")
SHAPE = (16, 1, 8, 8)


@pytest.fixture(autouse=True)
def _measuring(monkeypatch, tmp_path):
    monkeypatch.delenv("SJLT_EXEC_PATH", raising=False)  # conftest's "default" off: really measure
    monkeypatch.setenv("SJLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SJLT_TUNE_BUDGET_S", "3")  # tiny models: a few rounds are plenty
    yield
    torch.set_flush_denormal(False)


def _cell(method="snn", **values):
    base = {"model.width": 0.0625, "model.timesteps": 2, "model.v_threshold": 0.5, "data.limit_train": 96,
            "data.limit_test": 32, "recipe.epochs": 1, "recipe.batch_size": 16}
    return Cell(method=method).with_values({**base, **values})


def _model(r):
    return build_model(r, DataShape(10, 1, 8))


def test_candidates_are_the_default_and_each_single_change_of_an_auto_axis(monkeypatch):
    seen = []

    def fake_time(steps, rounds, deadline=None):
        seen.append(list(steps))
        return {k: 1.0 for k in steps}

    monkeypatch.setattr(execpath, "_time", fake_time)
    r = resolve(_cell())
    p = execpath.tune(r, _model(r), SHAPE, CPU)
    assert seen[0] == [("channels_last", "fast", "keep"), ("contiguous", "fast", "keep"),
                       ("channels_last", "torch", "keep"), ("channels_last", "fast", "flush")]
    assert p.choice() == ("channels_last", "fast", "keep") and p.source == "tuned"  # ties keep the default
    # a fixed axis is not a candidate; an ANN has no LIF axis
    seen.clear()
    r = resolve(_cell(**{"recipe.memory_format": "contiguous"}))
    execpath.tune(r, _model(r), SHAPE, CPU)
    assert seen[0] == [("contiguous", "fast", "keep"), ("contiguous", "torch", "keep"), ("contiguous", "fast", "flush")]
    seen.clear()
    r = resolve(_cell("ann"))
    execpath.tune(r, _model(r), SHAPE, CPU)
    assert seen[0] == [("channels_last", None, "keep"), ("contiguous", None, "keep"), ("channels_last", None, "flush")]


@pytest.mark.parametrize(("times", "chosen"), [
    ({("contiguous", "fast", "keep"): 0.98}, ("channels_last", "fast", "keep")),  # 2 % faster: under MIN_GAIN
    ({("contiguous", "fast", "keep"): 0.90}, ("contiguous", "fast", "keep")),
    ({("channels_last", "torch", "keep"): 0.9, ("channels_last", "fast", "flush"): 0.8},
     ("channels_last", "torch", "flush")),  # both win: the combination, measured faster again
])
def test_the_choice_rule(times, chosen, monkeypatch):
    def fake_time(steps, rounds, deadline=None):
        out = {}
        for k in steps:
            if k == ("channels_last", "torch", "flush"):
                out[k] = 0.7
            else:
                out[k] = times.get(k, 1.0)
        return out

    monkeypatch.setattr(execpath, "_time", fake_time)
    r = resolve(_cell())
    assert execpath.tune(r, _model(r), SHAPE, CPU).choice() == chosen


def test_measured_once_then_cached_per_machine_and_shape(monkeypatch, tmp_path):
    r = resolve(_cell())
    p1 = resolve_exec_path(r, _model(r), SHAPE, CPU)
    assert p1.source == "tuned" and p1.tune_seconds > 0 and len(p1.step_ms) >= 4
    data = json.loads(execpath.cache_file().read_text())
    key = next(iter(data))
    assert len(data) == 1 and '"cpu"' in key and '"torch"' in key and '"width": 0.0625' in key
    monkeypatch.setattr(execpath, "tune", lambda *a, **k: pytest.fail("a cached shape was measured again"))
    p2 = resolve_exec_path(r, _model(r), SHAPE, CPU)
    assert p2.source == "cache" and p2.choice() == p1.choice() and p2.tune_seconds == 0
    # another batch is another shape
    monkeypatch.setattr(execpath, "tune", lambda *a, **k: ExecPath(source="tuned"))
    assert resolve_exec_path(r, _model(r), (8, 1, 8, 8), CPU).source == "tuned"


def test_fixed_choices_are_not_measured_and_a_resume_keeps_its_path(monkeypatch):
    monkeypatch.setattr(execpath, "tune", lambda *a, **k: pytest.fail("measured a fixed path"))
    r = resolve(_cell(**{"recipe.memory_format": "contiguous", "model.lif_impl": "torch", "recipe.denormals": "flush"}))
    m = _model(r)
    p = resolve_exec_path(r, m, SHAPE, CPU)
    assert p.source == "fixed" and p.choice() == ("contiguous", "torch", "flush")
    assert all(not n.native for n in m.modules() if hasattr(n, "native"))
    r = resolve(_cell())
    p = resolve_exec_path(r, _model(r), SHAPE, CPU, resumed={"memory_format": "contiguous", "lif": "torch",
                                                           "denormals": "keep", "source": "tuned"})
    assert p.source == "checkpoint" and p.choice() == ("contiguous", "torch", "keep")


def test_bf16_slower_than_fp32_warns_with_the_ratio(monkeypatch, caplog):
    from spikingjelly_lt.training import precision as precision_mod

    monkeypatch.setattr(precision_mod, "bf16_supported", lambda device="cpu": True)

    def fake_time(steps, rounds, deadline=None):
        return {k: (0.8 if k == ("fp32",) else 1.0) for k in steps}  # bf16 step 1.0 s, fp32 0.8 s

    monkeypatch.setattr(execpath, "_time", fake_time)
    r = resolve(_cell(**{"recipe.precision": "bf16"}))
    with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
        p = resolve_exec_path(r, _model(r), SHAPE, CPU)
    assert p.bf16_vs_fp32 == 0.8
    lines = [rec.getMessage() for rec in caplog.records if "bf16" in rec.getMessage()]
    assert len(lines) == 1 and "0.80x" in lines[0] and "recipe.precision=fp32" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):  # from the cache: warned again
        assert resolve_exec_path(r, _model(r), SHAPE, CPU).source == "cache"
    assert any("0.80x" in rec.getMessage() for rec in caplog.records)


def test_tuning_is_outside_the_clock_and_the_path_is_recorded(monkeypatch, tmp_path):
    from spikingjelly_lt.training.checkpoint import load_checkpoint
    from spikingjelly_lt.training.trainer import run_cell

    real = execpath.tune

    def slow(*a, **k):
        p = real(*a, **k)
        time.sleep(6.0)
        return ExecPath(**{**p.to_dict(), "tune_seconds": p.tune_seconds + 6.0})

    monkeypatch.setattr(execpath, "tune", slow)
    m = run_cell(_cell(**{"data.limit_train": 40}), checkpoint=tmp_path / "c.pt")  # 2 steps
    assert m["exec_path"]["source"] == "tuned" and m["tune_seconds"] >= 6.0
    assert m["time_to_ticket_s"] < 6.0 and m["train_seconds"] < 6.0
    ck = load_checkpoint(tmp_path / "c.pt")
    assert ck["exec_path"]["memory_format"] == m["exec_path"]["memory_format"]


def test_sjlt_tune_prints_the_table_and_caches(capsys, monkeypatch):
    from conftest import run_cli

    code, out, err = run_cli(["tune", "--method", "snn", "--arch", "resnet19", "--width", "0.0625",
                              "--timesteps", "2", "--batch-size", "8", "--input-size", "8", "--json"],
                             capsys, monkeypatch)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["source"] == "tuned" and len(rep["step_ms"]) >= 4 and rep["cpu"]["model"]
    assert execpath.cache_file().exists()
