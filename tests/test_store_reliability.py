"""The results store under faults (issue 26): one owner per cell, network filesystems, disk
full, read-only files and media, damaged rows, interruptible lock waits, durable commits.

Real processes where the issue asks for them (claims, a dead owner, Ctrl-C in a lock wait);
a tmpfs where this machine lets the test mount one (disk full, read-only media), a
monkeypatched write error or file mode elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.results import store as store_mod
from spikingjelly_lt.results.store import SCHEMA_VERSION, ResultStore, config_hash, merge
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CELL = {"method": "binw-slt", "sparsity": 0.5, "seed": 0}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _py(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), **kw)


def _end(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- one owner per cell ----------------------------------------------------------------

CLAIMER = """
import json, os, sys, time
from spikingjelly_lt.results.store import ResultStore
store = ResultStore(sys.argv[1])
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
h = store.claim(json.loads(sys.argv[3]))
print(json.dumps(h), flush=True)
sys.stdin.readline()  # stay alive (the claim stays live) until the test says so
"""


def test_two_processes_claim_one_cell_only_one_gets_it(tmp_path):
    db, go = tmp_path / "r.db", tmp_path / "go"
    ResultStore(db).close()
    procs = [_py(CLAIMER, db, go, json.dumps(CELL)) for _ in range(3)]
    try:
        time.sleep(0.5)  # all three importing, then polling for the start signal
        go.touch()
        got = [json.loads(p.stdout.readline()) for p in procs]
        assert got.count(config_hash(CELL)) == 1 and got.count(None) == 2, got
        with ResultStore(db, readonly=True) as store:
            assert store.status(config_hash(CELL)) == "running" and store.count() == 1
    finally:
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            _end(p)


def test_a_dead_processs_claim_is_taken_over(tmp_path, caplog):
    db, go = tmp_path / "r.db", tmp_path / "go"
    go.touch()
    proc = _py(CLAIMER, db, go, json.dumps(CELL))
    try:
        assert json.loads(proc.stdout.readline()) == config_hash(CELL)
        store = ResultStore(db)
        assert store.claim(CELL) is None  # live: its process is running and beat just now
        proc.kill()
        proc.wait(timeout=10)
        with caplog.at_level(logging.INFO, logger="spikingjelly_lt"):
            assert store.claim(CELL) == config_hash(CELL)  # dead PID on this host: at once, no TTL wait
        assert f"process {proc.pid} on this host is gone" in caplog.text
        assert store.finish(config_hash(CELL), {"top1": 0.9}) and store.get(config_hash(CELL))["status"] == "done"
    finally:
        _end(proc)


def _set_claim(db: Path, h: str, owner: str, age_s: float) -> None:
    from datetime import UTC, datetime, timedelta

    stamp = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="microseconds")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE results SET owner = ?, heartbeat_at = ? WHERE config_hash = ?", (owner, stamp, h))


def test_an_expired_heartbeat_is_taken_over_and_a_fresh_one_is_not(tmp_path, caplog):
    db = tmp_path / "r.db"
    first, second = ResultStore(db), ResultStore(db, claim_ttl_s=60)
    h = first.claim(CELL)
    with first.keep_alive(h, every_s=30):  # kept alive by this process: live for another store object
        assert h and second.claim(CELL) is None
    # this process's claim that nothing keeps alive any more (its run ended): taken over
    assert second.claim(CELL) == h and first.claim(CELL) == h
    _set_claim(db, h, f"{second.host}:1:abcd", age_s=10)  # another live process on this host (PID 1)
    assert second.claim(CELL) is None
    _set_claim(db, h, "other-host:1:abcd", age_s=10)  # another host: only the heartbeat counts
    assert second.claim(CELL) is None
    _set_claim(db, h, "other-host:1:abcd", age_s=61)
    with caplog.at_level(logging.INFO, logger="spikingjelly_lt"):
        assert second.claim(CELL) == h
    assert "last heartbeat is 61 s old" in caplog.text
    # this host, PID alive (ours) but silent for longer than the TTL: expired as well
    _set_claim(db, h, f"{second.host}:{os.getpid()}:ffff", age_s=300)
    assert first.claim(CELL) == h
    # the owner that lost it cannot mark it failed/interrupted; finish still records the result
    assert not second.fail(h, "oom") and not second.interrupt(h)
    assert first.get(h)["status"] == "running"
    assert second.finish(h, {"top1": 0.5}) and first.get(h)["metrics"] == {"top1": 0.5}


def test_a_done_row_is_never_overwritten_by_interrupt_or_fail(tmp_path, caplog):
    """The issue's reproduction: a second run's Ctrl-C/SIGTERM turned a done row interrupted."""
    code = "import logging; logging.basicConfig()\n" + CLAIMER.replace("sys.stdin.readline()  #", "sys.stdin.readline(); print(store.interrupt(h), "
                           "store.fail(h, 'x'), store.finish(h, {'top1': 0.0}), flush=True)  #")
    db, go = tmp_path / "r.db", tmp_path / "go"
    go.touch()
    proc = _py(code, db, go, json.dumps(CELL))
    try:
        h = json.loads(proc.stdout.readline())
        with ResultStore(db) as store:
            assert store.begin(CELL) == h  # --rerun style: takes even a live claim
            assert store.finish(h, {"top1": 0.91})
            proc.stdin.write("\n")
            proc.stdin.flush()
            out, err = _end(proc)
            assert proc.returncode == 0, err
            assert out.split() == ["False", "False", "False"]  # the other run wrote nothing
            assert "already done" in err
            row = store.get(h)
            assert (row["status"], row["metrics"]) == ("done", {"top1": 0.91})
            with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
                assert not store.interrupt(h) and not store.fail(h, "late")  # nor by its own owner
            assert store.get(h)["status"] == "done" and "not overwriting" in caplog.text
            assert store.claim(CELL) is None and store.claim(CELL, force=True) == h  # force: --rerun
    finally:
        _end(proc)


def test_keep_alive_refreshes_the_claim_and_stops_cleanly(tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    mine, other = ResultStore(db, claim_ttl_s=1.0), ResultStore(db, claim_ttl_s=1.0)
    h = mine.claim(CELL)
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args))
    with mine.keep_alive(h, every_s=0.1) as keeper:
        time.sleep(1.5)
        assert other.claim(CELL) is None  # older than the TTL, but beating
        assert keeper.alive and keeper.beats >= 3
        assert mine.heartbeat(h)
    assert not keeper.alive
    time.sleep(1.1)
    assert other.claim(CELL) == h  # no keeper: the claim expired
    assert not mine.heartbeat(h)
    # the claim taken over: the keeper notices and ends by itself
    lost = mine.keep_alive(h, every_s=0.05)
    lost._thread.join(2)
    assert not lost.alive and lost.lost
    # a keeper whose every beat fails (no such table) keeps trying and never raises
    broken = store_mod.ClaimKeeper(tmp_path / "not-results.db", h, mine.owner, every_s=0.05).start()
    time.sleep(0.3)
    assert broken.alive
    broken.stop()
    assert not broken.alive and not raised


# -- network filesystems, durability, lock waits ---------------------------------------


def test_network_filesystem_uses_a_rollback_journal_with_one_warning(tmp_path, monkeypatch, caplog):
    local = tmp_path / "local.db"
    ResultStore(local).close()
    conn = sqlite3.connect(local)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    monkeypatch.setattr(store_mod, "filesystem_type", lambda path: "nfs4")
    db = tmp_path / "shared.db"
    with caplog.at_level(logging.WARNING, logger="spikingjelly_lt"):
        for _ in range(2):
            with ResultStore(db) as store:
                store.finish(store.claim(CELL, force=True), {"top1": 0.5})
                assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        with ResultStore(local) as store:  # a WAL file now seen on NFS is switched too
            assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    warnings = [r.getMessage() for r in caplog.records if "network filesystem" in r.getMessage()]
    assert len(warnings) == 2 and str(db) in warnings[0] and "nfs4" in warnings[0]
    assert "sjlt results merge" in warnings[0]
    assert not Path(f"{db}-wal").exists()


def test_mount_types():
    assert store_mod.is_network_filesystem("nfs4") and store_mod.is_network_filesystem("fuse.sshfs")
    assert store_mod.is_network_filesystem("lustre") and store_mod.is_network_filesystem("cifs")
    assert not store_mod.is_network_filesystem("ext4") and not store_mod.is_network_filesystem(None)
    assert not store_mod.is_network_filesystem("fuse.lxcfs") and not store_mod.is_network_filesystem("tmpfs")
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc/self/mountinfo")
    assert store_mod.filesystem_type("/proc/self") == "proc"  # the longest mount point wins over /
    assert store_mod.filesystem_type("/proc/no/such/file") == "proc"


def test_commits_are_durable_and_sqlite_never_blocks_long(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] <= 250


def test_a_lock_held_too_long_is_one_line_after_a_bounded_wait(tmp_path, monkeypatch):
    db = tmp_path / "r.db"
    ResultStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_mod, "_LOCK_WAIT_S", 0.6)
    try:
        store = ResultStore(db)
        start = time.monotonic()
        with pytest.raises(UsageError, match="stayed locked") as exc:
            store.claim(CELL)
        assert time.monotonic() - start < 2.0 and "\n" not in str(exc.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.claim(CELL) == config_hash(CELL)


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(30)
"""
WAITER = """
import sys
from spikingjelly_lt.results.store import ResultStore
store = ResultStore(sys.argv[1])
print("waiting", flush=True)
store.claim({"m": 1})
print("claimed", flush=True)
"""


def test_ctrl_c_during_a_lock_wait_exits_within_two_seconds(tmp_path):
    db = tmp_path / "r.db"
    ResultStore(db).close()
    holder = _py(HOLDER, db)
    waiter = None
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = _py(WAITER, db)
        assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(1.0)
        assert waiter.poll() is None  # still waiting for the lock
        start = time.monotonic()
        waiter.send_signal(signal.SIGINT)
        waiter.wait(timeout=10)
        took = time.monotonic() - start
        _, err = waiter.communicate()
        assert took < 2.0, took
        assert waiter.returncode != 0 and "KeyboardInterrupt" in err, err
    finally:
        holder.kill()
        _end(holder)
        if waiter is not None:
            _end(waiter)


# -- disk full, read-only files and media ---------------------------------------------


class _FullDisk:
    """A connection whose commits fail as SQLite's do on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args):
        if sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def test_disk_full_on_a_write_is_one_line_and_loses_no_row(tmp_path):
    db = tmp_path / "r.db"
    store = ResultStore(db)
    h = store.claim(CELL)
    store.finish(h, {"top1": 0.9})
    real, store._conn = store._conn, _FullDisk(store._conn)
    for write in (lambda: store.claim({"m": 2}), lambda: store.interrupt(h), lambda: store.begin({"m": 3})):
        with pytest.raises(UsageError) as exc:
            write()
        msg = str(exc.value)
        assert "\n" not in msg and str(db) in msg and "disk is full" in msg and "free space" in msg
    store._conn = real
    assert not real.in_transaction
    store.close()
    with ResultStore(db, readonly=True) as again:
        assert again.count() == 1 and again.get(h)["metrics"] == {"top1": 0.9}


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_really_full_disk_is_one_line_and_loses_no_row(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "192k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched test covers it")
    try:
        db, written = disk / "r.db", []
        store = ResultStore(db)
        with pytest.raises(UsageError) as exc:
            for i in range(200):
                h = store.claim({"i": i})
                store.finish(h, {"blob": "x" * 16000, "i": i})
                written.append(h)
        assert "\n" not in str(exc.value) and str(db) in str(exc.value) and "full" in str(exc.value)
        store.close()
        assert written
        with ResultStore(db, readonly=True) as again:
            assert [r["config_hash"] for r in again.rows("done")] == written
    finally:
        _umount(disk)


def _results_with_rows(db: Path) -> str:
    with ResultStore(db) as store:
        h = store.claim(CELL)
        store.finish(h, {"top1": 0.875})
    return h


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes a mode-444 file anyway")
def test_a_read_only_file_is_one_line_and_still_reported(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    h = _results_with_rows(db)
    db.chmod(0o444)
    with ResultStore(db) as store:
        with pytest.raises(UsageError, match="read-only") as exc:
            store.claim({"m": 2})
        assert "\n" not in str(exc.value) and str(db) in str(exc.value)
    code, out, err = run_cli(["results", "export", str(db)], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["config_hash"] == h, err
    db.chmod(0o644)  # writable again: the -wal/-shm left read-only must not keep failing
    with ResultStore(db) as store:
        assert store.claim({"m": 2}) == config_hash({"m": 2})


def test_read_only_media_report_and_export_work_and_writes_are_one_line(tmp_path, capsys, monkeypatch):
    media = tmp_path / "media"
    if not _mount_tmpfs(media, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        clean, wal = media / "clean.db", media / "wal.db"
        _results_with_rows(clean)
        # a WAL file whose last rows are still in its -wal (a run killed before its checkpoint)
        with ResultStore(wal) as store:
            store.finish(store.claim(CELL), {"top1": 0.875})
            store._conn.execute("PRAGMA wal_autocheckpoint=0")
            store.finish(store.claim({"m": 2}), {"top1": 0.5})
            snap = {s: Path(f"{wal}{s}").read_bytes() for s in ("", "-wal")}
        assert len(snap["-wal"]) > 0
        for s, data in snap.items():
            Path(f"{wal}{s}").write_bytes(data)
        Path(f"{wal}-shm").unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True, capture_output=True)
        with ResultStore(clean, readonly=True) as store:
            assert store.count("done") == 1
        with ResultStore(wal, readonly=True) as store:
            assert store.count("done") == 2  # the rows in the -wal were read, not skipped
        code, out, err = run_cli(["results", "export", str(wal)], capsys, monkeypatch)
        assert code == 0 and len(out.splitlines()) == 2, err
        code, out, err = run_cli(["report", str(clean), "--out", str(tmp_path / "rep")], capsys, monkeypatch)
        assert code == 0 and (tmp_path / "rep" / "report.md").exists(), err
        code, out, err = run_cli(["results", "verify", str(wal)], capsys, monkeypatch)
        assert code == 0 and "2 ok" in out, out + err
        for db in (clean, wal):
            with pytest.raises(UsageError) as exc:
                ResultStore(db).claim({"m": 3})
            assert "\n" not in str(exc.value) and str(db) in str(exc.value) and "writable" in str(exc.value)
    finally:
        _umount(media)


# -- damaged rows ----------------------------------------------------------------------


def _flip(db: Path, old: bytes, new: bytes) -> None:
    data = db.read_bytes()
    assert data.count(old) == 1
    db.write_bytes(data.replace(old, new))


@pytest.mark.parametrize("new, problem", [(b"0.91234568", "checksum does not match"),
                                          (b"0.9123\xff567", "not valid UTF-8")])
def test_a_flipped_byte_is_a_damaged_row_naming_its_hash(tmp_path, capsys, monkeypatch, new, problem):
    db = tmp_path / "r.db"
    with ResultStore(db) as store:
        h = store.claim(CELL)
        store.finish(h, {"top1": 0.91234567})
        ok = store.claim({"m": 2})
        store.finish(ok, {"top1": 0.5})
    _flip(db, b"0.91234567", new)
    with ResultStore(db) as store:
        for read in (lambda: store.get(h), store.rows, lambda: store.export("jsonl", tmp_path / "x.jsonl")):
            with pytest.raises(UsageError, match=problem) as exc:
                read()
            assert "\n" not in str(exc.value) and h in str(exc.value) and str(db) in str(exc.value)
        assert store.get(ok)["metrics"] == {"top1": 0.5}  # the other row reads as before
    code, out, err = run_cli(["results", "verify", str(db)], capsys, monkeypatch)
    assert code == 1 and f"damaged row {h}" in out and "1 ok, 1 damaged" in out, out + err
    code, out, err = run_cli(["results", "verify", str(db), "--json"], capsys, monkeypatch)
    found = json.loads(out)
    assert code == 1 and found["damaged"][0]["config_hash"] == h and found["ok"] == 1 and not found["sound"]
    code, out, err = run_cli(["results", "show", str(db)], capsys, monkeypatch)
    assert code == 2 and h in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match=h):
        merge([db], tmp_path / "m.db")
    assert not (tmp_path / "m.db").exists()
    with ResultStore(db) as store:  # --rerun recovers the cell
        assert store.claim(CELL, force=True) == h and store.finish(h, {"top1": 0.9})
    code, out, _ = run_cli(["results", "verify", str(db)], capsys, monkeypatch)
    assert code == 0 and "2 ok, 0 damaged" in out


def test_verify_refuses_a_missing_or_foreign_file_with_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["results", "verify", str(tmp_path / "nope.db")], capsys, monkeypatch)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 10)
    code, _, err = run_cli(["results", "verify", str(tmp_path / "junk.db")], capsys, monkeypatch)
    assert code == 2 and "not a results database" in err


# -- schema 3 files --------------------------------------------------------------------

_V3_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE results (config_hash TEXT PRIMARY KEY, config TEXT NOT NULL, metrics TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')), reason TEXT,
    started_at TEXT, finished_at TEXT, env TEXT, cell TEXT);
CREATE INDEX results_status ON results (status);
INSERT INTO meta (key, value) VALUES ('schema_version', '3');
"""


def _v3(db: Path, rows: list[tuple]) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(_V3_SCHEMA)
        conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, NULL, 't0', ?, '{}', NULL)", rows)
    conn.close()


def test_schema_3_files_read_merge_and_upgrade(tmp_path, capsys, monkeypatch):
    old = tmp_path / "v3.db"
    aaaa, bbbb = config_hash({"m": 0}), config_hash({"m": 1})
    _v3(old, [(aaaa, '{"m":0}', '{"top1":0.9}', "done", "t1"), (bbbb, '{"m":1}', None, "running", None)])
    before = old.read_bytes()
    with ResultStore(old, readonly=True) as store:
        assert store.get(aaaa)["metrics"] == {"top1": 0.9} and store.verify()["unchecked"] == 2
    assert old.read_bytes() == before  # reading never upgrades
    dest = tmp_path / "new.db"
    code, out, err = run_cli(["results", "merge", str(old), "-o", str(dest)], capsys, monkeypatch)
    assert code == 0 and "2 row(s) added" in out, err
    with ResultStore(dest, readonly=True) as store:
        assert store.get(aaaa)["metrics"] == {"top1": 0.9} and store.verify()["unchecked"] == 0
    assert merge([old], dest).added == 0  # idempotent across versions
    with ResultStore(old) as store:  # a write upgrades to 4; the old rows keep their identity
        assert store.claim({"m": 0}) is None  # done: not claimed
        h = store.claim({"m": 2})
        assert store.get(aaaa)["metrics"] == {"top1": 0.9} and store.status(bbbb) == "running"
        assert store.claim({"m": 1}) == bbbb  # an old running row has no owner: taken over
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION) == "4"
        cols = {r[1] for r in conn.execute("PRAGMA table_info(results)")}
        assert {"owner", "heartbeat_at", "checksum"} <= cols
        assert conn.execute("SELECT checksum FROM results WHERE config_hash = ?", (aaaa,)).fetchone()[0] is None
        assert conn.execute("SELECT owner FROM results WHERE config_hash = ?", (h,)).fetchone()[0]
    conn.close()
    # an old row (no checksum) whose JSON is damaged is still named, not a traceback
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE results SET metrics = '{\"top1\":0.' WHERE config_hash = ?", (aaaa,))
    conn.close()
    with ResultStore(old, readonly=True) as store, pytest.raises(UsageError, match=f"{aaaa}.*not valid JSON"):
        store.rows()
