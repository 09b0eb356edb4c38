"""The SQLite results store: lifecycle, refusal of foreign files, export, merge, SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.results.store import SCHEMA_VERSION, ResultStore, config_hash, merge

ROOT = Path(__file__).resolve().parents[1]
CFG = {
    "arch": "resnet19",
    "dataset": "digits",
    "method": "binw-slt",
    "sparsity": 0.5,
    "seed": 0,
    "timesteps": 4,
    "epochs": 2,
    "width": 0.25,
}
ENV = {"torch": "2.3.0", "spikingjelly": "0.0.0.0.14", "device": "cpu", "commit": "abc123"}


def cfg(**kw):
    return {**CFG, **kw}


def test_config_hash_stable_under_key_order():
    h = config_hash(CFG)
    assert h == config_hash(dict(reversed(list(CFG.items()))))
    assert len(h) == 16 and int(h, 16) >= 0
    assert h != config_hash(cfg(seed=1))
    assert config_hash({"a": {"x": 1, "y": 2}}) == config_hash({"a": {"y": 2, "x": 1}})


def test_begin_finish_get_round_trip(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        h = store.begin(CFG, ENV)
        assert h == config_hash(CFG)
        assert store.status(h) == "running"
        assert not store.is_done(CFG)
        store.finish(h, {"top1": 0.91, "sparsity": 0.5, "energy_pj": None, "layers": [1, 2]})
    with ResultStore(path) as store:  # reopen: it was committed
        row = store.get(h)
        assert row["status"] == "done" and store.is_done(h)
        assert row["config"] == CFG and row["env"] == ENV
        assert row["metrics"] == {
            "top1": 0.91,
            "sparsity": 0.5,
            "energy_pj": None,
            "layers": [1, 2],
        }
        assert row["started_at"] <= row["finished_at"]
        assert store.get("0" * 16) is None and store.status("0" * 16) is None
        assert [r["config_hash"] for r in store.rows("done")] == [h]
        assert store.count() == 1 and store.count("running") == 0


def test_running_row_is_not_done_and_fail_records_reason(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        h1 = store.begin(CFG, ENV)
        h2 = store.begin(cfg(seed=1), ENV)
        store.fail(h2, "CUDA out of memory", {"epochs_run": 1})
        assert store.status(h1) == "running" and not store.is_done(h1)
        assert store.rows("done") == []
        row = store.get(h2)
        assert (row["status"], row["reason"], row["metrics"]) == (
            "failed",
            "CUDA out of memory",
            {"epochs_run": 1},
        )
        # A rerun (resume) marks the cell running again and clears the old outcome.
        store.begin(cfg(seed=1), ENV)
        assert store.get(h2)["reason"] is None and store.status(h2) == "running"
        with pytest.raises(KeyError):
            store.finish("f" * 16, {})
        with pytest.raises(UsageError):
            store.rows("bogus")


def test_corrupt_file_raises_and_is_untouched(tmp_path):
    path = tmp_path / "junk.sqlite"
    data = os.urandom(4096)
    path.write_bytes(data)
    with pytest.raises(UsageError, match=str(path)) as exc:
        ResultStore(path)
    assert "\n" not in str(exc.value)
    assert path.read_bytes() == data


def test_corrupt_sqlite_body_raises_and_is_untouched(tmp_path):
    path = tmp_path / "trunc.sqlite"
    data = b"SQLite format 3\x00" + os.urandom(2000)
    path.write_bytes(data)
    with pytest.raises(UsageError, match=str(path)):
        ResultStore(path)
    assert path.read_bytes() == data


def test_foreign_sqlite_raises_and_is_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.close()
    data = path.read_bytes()
    with pytest.raises(UsageError, match="without a results schema"):
        ResultStore(path)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_future_schema_version_raises(tmp_path):
    path = tmp_path / "future.sqlite"
    ResultStore(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    conn.close()
    with pytest.raises(UsageError, match="newer"):
        ResultStore(path)


def test_missing_source_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such results file"):
        ResultStore(tmp_path / "nope.sqlite", create=False)
    assert not (tmp_path / "nope.sqlite").exists()


def _filled(path: Path) -> ResultStore:
    store = ResultStore(path)
    h = store.begin(cfg(seed=0), ENV)
    store.finish(
        h, {"top1": 0.9, "sparsity": 0.5, "per_layer": {"conv1": 0.1}, "bad": float("nan")}
    )
    h = store.begin(cfg(seed=1, method="snn"), ENV)
    store.fail(h, "diverged, loss=nan")
    store.begin(cfg(seed=2), ENV)
    return store


def test_export_jsonl_parses_back(tmp_path):
    with _filled(tmp_path / "r.sqlite") as store:
        out = tmp_path / "r.jsonl"
        store.export("jsonl", out)
        rows = store.rows()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    assert [r["config"] for r in lines] == [r["config"] for r in rows]
    assert lines[0]["metrics"]["bad"] is None  # NaN exported as null: strict JSON
    assert lines[0]["metrics"]["per_layer"] == {"conv1": 0.1}
    assert [r["status"] for r in lines] == ["done", "failed", "running"]


def test_export_csv_parses_back(tmp_path):
    with _filled(tmp_path / "r.sqlite") as store:
        out = tmp_path / "r.csv"
        store.export("csv", out)
        with pytest.raises(UsageError):
            store.export("xml", tmp_path / "r.xml")
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    first = rows[0]
    assert first["status"] == "done" and first["config.method"] == "binw-slt"
    assert float(first["config.sparsity"]) == 0.5 and float(first["metrics.top1"]) == 0.9
    assert json.loads(first["metrics.per_layer"]) == {"conv1": 0.1}
    assert first["env.device"] == "cpu"
    assert rows[1]["reason"] == "diverged, loss=nan" and rows[1]["metrics.top1"] == ""
    assert rows[2]["finished_at"] == ""


def _dump(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM results ORDER BY config_hash").fetchall()
    finally:
        conn.close()


def test_merge_keeps_newest_done_and_is_idempotent(tmp_path):
    a, b, c = (tmp_path / f"{n}.sqlite" for n in "abc")
    dest = tmp_path / "m.sqlite"
    shared, only_a, flaky = cfg(seed=0), cfg(seed=10), cfg(seed=20)
    with ResultStore(a) as sa, ResultStore(b) as sb, ResultStore(c) as sc:
        h = sa.begin(shared, ENV)
        sa.finish(h, {"top1": 0.80})  # older done
        sb.begin(shared, ENV)
        sb.finish(h, {"top1": 0.85})  # newer done: wins
        sc.begin(shared, ENV)  # newest of all, but only running
        sa.begin(only_a, ENV)
        sa.finish(config_hash(only_a), {"top1": 0.7})
        hf = sb.begin(flaky, ENV)
        sb.fail(hf, "oom")  # failed in b ...
        sc.begin(flaky, ENV)  # ... newer but only running in c
        sc.begin(cfg(seed=30), ENV)  # disjoint running row
    stats = merge([a, b, c], dest)
    assert stats.added + stats.replaced + stats.kept == 7
    with ResultStore(dest) as sd:
        assert sd.get(h)["metrics"] == {"top1": 0.85} and sd.status(h) == "done"
        assert sd.status(config_hash(only_a)) == "done"
        assert sd.status(hf) == "failed" and sd.get(hf)["reason"] == "oom"
        assert sd.status(config_hash(cfg(seed=30))) == "running"
        assert sd.count() == 4
    first = _dump(dest)
    again = merge([a, b, c], dest)
    assert (again.added, again.replaced) == (0, 0)
    assert _dump(dest) == first
    merge([c, b, a], tmp_path / "m2.sqlite")  # the order of sources does not matter
    assert _dump(tmp_path / "m2.sqlite") == first
    assert merge([dest], dest).added == 0  # merging a file into itself is a no-op


def test_merge_union_of_disjoint_files(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"s{i}.sqlite"
        with ResultStore(p) as s:
            for seed in range(2):
                c = cfg(seed=seed, method=f"m{i}")
                s.begin(c, ENV)
                s.finish(config_hash(c), {"top1": i / 10})
        paths.append(p)
    stats = merge(paths, tmp_path / "all.sqlite")
    assert (stats.added, stats.replaced, stats.kept) == (6, 0, 0)
    with ResultStore(tmp_path / "all.sqlite") as s:
        assert s.count("done") == 6
        assert {r["config"]["method"] for r in s.rows()} == {"m0", "m1", "m2"}
    with pytest.raises(UsageError):
        merge([tmp_path / "missing.sqlite"], tmp_path / "all.sqlite")


KILLED_SCRIPT = """
import sys, time
from spikingjelly_lt.results.store import ResultStore
store = ResultStore(sys.argv[1])
for seed in range(2):
    c = {"method": "slt", "seed": seed}
    h = store.begin(c, {})
    store.finish(h, {"top1": 0.5 + seed / 10})
store.begin({"method": "slt", "seed": 2}, {})
print("ready", flush=True)
time.sleep(60)
"""


def test_sigkill_mid_run_keeps_finished_cells(tmp_path):
    path = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with ResultStore(path) as store:
        assert store.count("done") == 2
        running = store.rows("running")
        assert len(running) == 1 and running[0]["config"]["seed"] == 2
        assert not store.is_done({"method": "slt", "seed": 2})


WRITER_SCRIPT = """
import sys
from spikingjelly_lt.results.store import ResultStore
store = ResultStore(sys.argv[1])
for seed in range(25):
    h = store.begin({"writer": sys.argv[2], "seed": seed}, {})
    store.finish(h, {"top1": 0.1})
"""


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(path), name], env=env)
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    for p in procs:
        assert p.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    with ResultStore(path) as store:
        assert store.count("done") == 50


def test_empty_file_is_not_a_source(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        ResultStore(path, create=False)
    assert path.read_bytes() == b""
