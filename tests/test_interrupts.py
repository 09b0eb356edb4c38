"""Ctrl-C and SIGTERM, two writers on one results file, and writes that fail half-way.

The signal and two-writer tests run real ``sjlt bench`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikingjelly_lt.cli import INTERRUPTED
from spikingjelly_lt.results.store import SCHEMA_VERSION, STATUSES, ResultStore, config_hash
from spikingjelly_lt.training.checkpoint import load_checkpoint, save_checkpoint

TINY = ["--set", "model.width=0.0625", "--set", "model.timesteps=2", "--set", "data.limit_train=128",
        "--set", "data.limit_test=64", "--device", "cpu", "--threads", "1"]


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return env | {"SJLT_DISABLE_ENTRY_POINTS": "1", "PYTHONUNBUFFERED": "1"}


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background job inherits SIGINT ignored


def _bench(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "spikingjelly_lt", "bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), preexec_fn=_default_sigint, **kw)


def _status(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [r[0] for r in conn.execute("SELECT status FROM results")]
    except sqlite3.Error:
        return []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_marks_the_row_interrupted_says_so_and_a_rerun_resumes(tmp_path, sig):
    db = tmp_path / "R.db"
    args = ["--methods", "ann", "--epochs", "400", "--results", str(db), *TINY]
    proc = _bench(args)
    deadline = time.monotonic() + 300  # a cold start builds the native kernels; a loaded machine is slow
    while _status(db) != ["running"] and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if _status(db) != ["running"]:  # never wait on a 400-epoch child: end it, then say what it printed
        proc.kill()
        pytest.fail(f"the bench never started its cell: {proc.communicate(timeout=30)}")
    time.sleep(1.0)  # inside the training loop
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert INTERRUPTED in err and "Traceback" not in err, err
    with ResultStore(db) as store:
        (row,) = store.rows()
        assert row["status"] == "interrupted" and "rerun" in row["reason"]
        assert not store.is_done(row["config_hash"])
    # the same command, shorter, resumes the cell (it is not done) and finishes it
    args[args.index("--epochs") + 1] = "1"
    done = subprocess.run([sys.executable, "-m", "spikingjelly_lt", "bench", *args, "--json"], capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert [o["status"] for o in json.loads(done.stdout)["cells"]] == ["done"]


def test_two_bench_processes_on_one_results_file_lose_no_row(tmp_path):
    """Two shards of one matrix writing one file at once (shared storage)."""
    db = tmp_path / "shared.db"
    common = ["--methods", "ann,bnn,snn,binw-snn", "--epochs", "1", "--results", str(db), *TINY]
    procs = [_bench([*common, "--shard", f"{i}/2"]) for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "locked" not in err, err
    with ResultStore(db) as store:
        rows = store.rows()
    assert sorted(r["config"]["method"] for r in rows) == ["ann", "binw-snn", "bnn", "snn"]
    assert {r["status"] for r in rows} == {"done"}


def test_two_identical_commands_on_one_file_train_every_cell_once(tmp_path):
    """Issue 26: the same command twice, 4 s apart: each cell is claimed by one process and
    trained once; the other skips it ('running in another process') or finds it done."""
    import json

    db = tmp_path / "r.db"
    common = ["--methods", "ann,snn,binw-slt", "--epochs", "8", "--results", str(db), "--json", *TINY]
    first = _bench(common)
    time.sleep(4)
    second = _bench(common)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    trained = []
    for p, (out, err) in zip((first, second), outs):
        assert p.returncode == 0, err
        trained += [c["config"]["method"] for c in json.loads(out)["cells"] if c["status"] == "done"]
    assert sorted(trained) == ["ann", "binw-slt", "snn"]  # every cell trained exactly once
    with ResultStore(db) as store:
        rows = store.rows()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"done"}


_WRITER = """
import sys
from spikingjelly_lt.results import store as s
s._BUSY_TIMEOUT_S = 0.01  # make SQLite give up at once: the retries must carry every write
st = s.ResultStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    h = st.begin({"writer": sys.argv[2], "i": i})
    st.finish(h, {"top1": i})
print("ok")
"""


def test_concurrent_store_writers_with_a_tiny_busy_timeout_never_fail(tmp_path):
    db = tmp_path / "hammer.db"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), name, "150"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for name in ("a", "b", "c")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err
    with ResultStore(db) as store:
        assert store.count("done") == 450 and store.count() == 450


def test_failed_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    from spikingjelly_lt.errors import UsageError

    with pytest.raises(UsageError, match="cannot write checkpoint .*Input/output error.*previous one is kept"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_failed_write_leaves_the_previous_results(tmp_path):
    db = tmp_path / "R.db"
    with ResultStore(db) as store:
        h = store.begin({"m": 1})
        store.finish(h, {"top1": 0.5})
        with pytest.raises(RuntimeError):
            with store._write() as conn:
                conn.execute("UPDATE results SET status = 'running', metrics = NULL WHERE config_hash = ?", (h,))
                raise RuntimeError("disk went away")
        assert store.get(h)["status"] == "done" and store.get(h)["metrics"] == {"top1": 0.5}


_V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE results (config_hash TEXT PRIMARY KEY, config TEXT NOT NULL, metrics TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')), reason TEXT, started_at TEXT,
    finished_at TEXT, env TEXT, cell TEXT);
CREATE INDEX results_status ON results (status);
INSERT INTO meta (key, value) VALUES ('schema_version', '2');
"""


def test_schema_2_file_upgrades_to_3_on_write_and_keeps_its_rows(tmp_path):
    db = tmp_path / "v2.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(_V2_SCHEMA)
        conn.execute("INSERT INTO results VALUES ('aaaa', '{\"m\":0}', '{\"top1\":0.9}', 'done', NULL, 't0', 't1',"
                     " '{}', '{\"cell\":{}}')")
    assert SCHEMA_VERSION >= 3 and "interrupted" in STATUSES
    with ResultStore(db) as store:
        assert store.get("aaaa")["metrics"] == {"top1": 0.9}  # readable before any write
        h = store.begin({"m": 1})
        store.interrupt(h)
        assert store.status(h) == "interrupted" and store.get("aaaa")["status"] == "done"
        assert store.count("interrupted") == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'results'").fetchone()[0]
        assert "interrupted" in sql
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "results_status" in indexes
        assert conn.execute("SELECT cell FROM results WHERE config_hash = 'aaaa'").fetchone()[0] == '{"cell":{}}'
    assert config_hash({"m": 1}) == h
