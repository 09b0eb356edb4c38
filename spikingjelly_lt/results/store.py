"""SQLite results store: one row per benchmark cell, keyed by the hash of its config.

Every write is its own committed transaction (``synchronous=FULL``: on disk before the
commit returns), so a process killed mid-run keeps every cell it finished. A cell being
run is *claimed* (:meth:`ResultStore.claim`): the row is ``running`` with an owner (host,
PID, random token) and a heartbeat (:meth:`ResultStore.keep_alive`); a second process
skips a live claim and takes over a dead one (its PID gone on this host) or an expired one
(no heartbeat for ``claim_ttl_s``). ``finish``/``fail``/``interrupt`` never overwrite a
``done`` row, and ``fail``/``interrupt`` only touch a row this store owns. Each row carries a
checksum of its stored text: a damaged row is one :class:`~spikingjelly_lt.errors.UsageError`
naming it, never a wrong number or a traceback.

Local files use WAL; a file on a network filesystem (NFS, SMB, Lustre, GPFS, Ceph, ...)
uses a rollback journal, since WAL needs memory shared by every process using the file
(one writing host per file there; shards write their own files and ``sjlt results merge``
combines them). Lock waits happen in Python (short SQLite busy timeout, jittered sleeps,
bounded in total), so Ctrl-C is never stuck in SQLite. Disk full, read-only files or
media, and damaged files are one ``UsageError`` line saying what to do. Read-only commands
open the store with ``readonly=True`` (``mode=ro``; ``immutable=1`` or a private copy on
read-only media). Files that are not ours (not SQLite, foreign tables, a newer schema)
raise :class:`~spikingjelly_lt.errors.UsageError` and are never touched.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import stat
import tempfile
import threading
import weakref
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Self, TextIO, TypeVar

from spikingjelly_lt.cell import canonical_json, cell_hash
from spikingjelly_lt.errors import UsageError, check_choice
from spikingjelly_lt._proc import pid_alive

__all__ = [
    "EXPORT_FORMATS",
    "NETWORK_FILESYSTEMS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ClaimKeeper",
    "MergeStats",
    "ResultStore",
    "canonical_json",
    "config_hash",
    "filesystem_type",
    "is_network_filesystem",
    "merge",
]

log = logging.getLogger("spikingjelly_lt")
_T = TypeVar("_T")

# 2 adds the ``cell`` column: the fully resolved cell of each row; 3 allows the status
# ``interrupted`` (a CHECK constraint cannot be altered in SQLite: the table is rebuilt);
# 4 adds ``owner`` and ``heartbeat_at`` (the claim of a running cell) and ``checksum``.
SCHEMA_VERSION = 4
STATUSES = ("running", "done", "failed", "interrupted")
EXPORT_FORMATS = ("jsonl", "json", "csv")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 0.1  # SQLite's own (C) wait per try: short, so Ctrl-C is seen at once
_LOCK_WAIT_S = 600.0  # total wait for another process's lock before giving up
_MAX_SLEEP_S = 0.25  # longest single sleep between tries
_CLAIM_TTL_S = 120.0  # a running row with no heartbeat for this long is abandoned
_COLUMNS = (
    "config_hash",
    "config",
    "metrics",
    "status",
    "reason",
    "started_at",
    "finished_at",
    "env",
    "cell",
)
# what a stored row is read as: the data columns, then the checksum (NULL before schema 4)
_ROW_COLUMNS = (*_COLUMNS, "checksum")
_RESULTS_TABLE = f"""CREATE TABLE {{name}} (
    config_hash  TEXT PRIMARY KEY,
    config       TEXT NOT NULL,
    metrics      TEXT,
    status       TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    reason       TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    env          TEXT,
    cell         TEXT,
    owner        TEXT,
    heartbeat_at TEXT,
    checksum     TEXT
)"""
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{_RESULTS_TABLE.format(name="results")};
CREATE INDEX results_status ON results (status);
INSERT INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
_STATUS_RANK = {"running": 0, "interrupted": 1, "failed": 2, "done": 3}

# Filesystem types where SQLite's WAL (shared memory between processes) is unsafe: network
# and cluster filesystems. ``fuse.X`` is matched on X.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "lustre", "gpfs", "ceph", "cephfs", "beegfs",
    "sshfs", "9p", "glusterfs", "afs", "ocfs2", "gfs2", "panfs", "wekafs", "orangefs", "pvfs2", "s3fs",
    "gcsfuse", "juicefs", "rclone", "davfs", "webdav", "quobyte", "moosefs", "mfs", "lizardfs", "cvmfs",
    "ncpfs", "coda",
})
_warned_network: set[str] = set()  # results files already warned about, once per process


# -- helpers ---------------------------------------------------------------------------


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The type of the filesystem holding ``path`` (``ext4``, ``nfs4``, ``fuse.sshfs``, ...).

    The mount point that is the longest prefix of the resolved path wins, read from
    ``/proc/self/mountinfo`` (or ``/proc/mounts``). None where neither can be read (not
    Linux). A missing ``path`` is looked up through its nearest existing parent.
    """
    p = Path(os.path.realpath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    target = str(p)
    mounts: list[tuple[str, str]] = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and rest:
                mounts.append((_unescape_mount(fields[4]), rest[0]))
    except OSError:
        try:
            for line in Path("/proc/mounts").read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3:
                    mounts.append((_unescape_mount(fields[1]), fields[2]))
        except OSError:
            return None
    best, fstype = -1, None
    for point, kind in mounts:  # later (stacked) mounts of the same point win: >=
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= best:
            best, fstype = len(point), kind
    return fstype


def _unescape_mount(field: str) -> str:
    """Mount points in /proc escape space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_network_filesystem(fstype: str | None) -> bool:
    """True for a network/cluster filesystem type (``nfs4``, ``cifs``, ``fuse.sshfs``, ...)."""
    if not fstype:
        return False
    kind = fstype.lower()
    return kind in NETWORK_FILESYSTEMS or kind.rpartition(".")[2] in NETWORK_FILESYSTEMS


def _is_locked(exc: sqlite3.Error) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _retry(fn: Callable[[], _T], path: Path, what: str, *, max_wait_s: float | None = None) -> _T:
    """Run ``fn()``; while the database is locked by another process, wait and retry.

    The waiting is done here, in Python, in jittered sleeps of at most ``_MAX_SLEEP_S``
    (SQLite's own busy wait is ``_BUSY_TIMEOUT_S``), so Ctrl-C ends it at once. After
    ``max_wait_s`` (default ``_LOCK_WAIT_S``) in all: one UsageError line.
    """
    limit = _LOCK_WAIT_S if max_wait_s is None else max_wait_s
    start = time.monotonic()
    attempt = 0
    told = False
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
            waited = time.monotonic() - start
            if waited >= limit:
                raise UsageError(
                    f"{path}: results file stayed locked by another process for {waited:.0f} s while trying "
                    f"to {what}; is a writer stuck? ({exc})"
                ) from None
            if not told and waited >= 5.0:
                log.info("%s: waiting for another process writing it (to %s; up to %.0f s in all)",
                         path, what, limit)
                told = True
            delay = min(_MAX_SLEEP_S, 0.01 * 2 ** min(attempt, 8)) * (0.5 + 0.5 * random.random())
            delay = max(0.0, min(delay, limit - waited))
            attempt += 1
            log.debug("%s: %s while trying to %s; retry %d in %.2f s", path, exc, what, attempt, delay)
            time.sleep(delay)


class _Undecodable(bytes):
    """Stored text that is not UTF-8: what a flipped byte leaves; reported as damage."""


def _text(raw: bytes) -> str | _Undecodable:
    """The connection's text_factory: UTF-8 text, or the bytes marked undecodable (never raises)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Undecodable(raw)


# one encoding and one hash for cells and stored rows (spikingjelly_lt.cell)
config_hash = cell_hash


def _now() -> str:
    """UTC timestamp, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _checksum(config: str | None, metrics: str | None, status: str | None, reason: str | None,
              env: str | None, cell: str | None) -> str:
    """sha256 (hex) of a row's stored text: config, metrics, status, reason, env and cell."""
    payload = json.dumps([config, metrics, status, reason, env, cell])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _damage(raw: Sequence[Any]) -> str | None:
    """Why a stored row (``_ROW_COLUMNS``) is damaged, or None when it reads back as written.

    Text that is not UTF-8, a checksum that does not match (rows from before schema 4 have
    none and are not checked), or JSON that does not decode.
    """
    row = dict(zip(_ROW_COLUMNS, raw))
    bad = [k for k, v in row.items() if isinstance(v, (bytes, _Undecodable))]
    if bad:
        return f"column {bad[0]!r} is not valid UTF-8 text"
    if row["checksum"] is not None:
        want = _checksum(row["config"], row["metrics"], row["status"], row["reason"], row["env"], row["cell"])
        if row["checksum"] != want:
            return "its checksum does not match its stored text"
    for key in ("config", "metrics", "env", "cell"):
        if row[key]:
            try:
                json.loads(row[key])
            except ValueError:
                return f"column {key!r} is not valid JSON"
    if not row["config"]:
        return "it has no config"
    return None


def _row_name(raw: Sequence[Any]) -> str:
    """A row's hash for messages, even when the hash itself is damaged."""
    h = raw[0]
    if isinstance(h, bytes):
        return bytes(h).decode("utf-8", "replace")
    return str(h)


def _decode_row(raw: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(_COLUMNS, raw))
    row["config"] = json.loads(row["config"])
    for key in ("metrics", "env", "cell"):
        row[key] = json.loads(row[key]) if row[key] else {}
    return row


def _row_key(raw: Sequence[Any]) -> tuple:
    """Total order for merging: done > failed > running, then newest, then content."""
    data = tuple(raw)[: len(_COLUMNS)]
    row = dict(zip(_COLUMNS, data))
    return (
        _STATUS_RANK.get(row["status"], -1),
        row["finished_at"] or "",
        row["started_at"] or "",
        tuple("" if v is None else str(v) for v in data),
    )


def _age_s(stamp: str | None) -> float | None:
    """Seconds since an ISO timestamp written by :func:`_now`, or None if unreadable."""
    if not isinstance(stamp, str):
        return None
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


@dataclass(frozen=True)
class MergeStats:
    """What a merge did to the destination."""

    added: int = 0
    replaced: int = 0
    kept: int = 0


_KEEPERS: weakref.WeakSet = weakref.WeakSet()  # this process's claim keepers (live ones keep claims live)


class ClaimKeeper:
    """Keeps one claim alive: a daemon thread refreshes the row's heartbeat every ``every_s``.

    It uses its own SQLite connection, never raises into the caller (a failed beat is
    logged and tried again soon), stops when the claim is gone (the row finished, or taken
    over by another process) and stops cleanly on :meth:`stop` / leaving the ``with`` block.
    """

    def __init__(self, path: str | os.PathLike[str], h: str, owner: str, *, every_s: float = 30.0) -> None:
        self.path, self.hash, self.owner = Path(path), h, owner
        self.every_s = max(0.01, float(every_s))
        self.beats = 0  # heartbeats written
        self.lost = False  # the claim was found gone (finished, or taken over)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sjlt-claim-{h}", daemon=True)
        _KEEPERS.add(self)

    def start(self) -> Self:
        """Start the thread (once)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        wait, failing = self.every_s, False
        try:
            while not self._stop.wait(wait):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
                        conn.text_factory = _text
                        conn.execute("PRAGMA synchronous=FULL")
                    if not self._beat(conn):
                        return
                    self.beats += 1
                    wait, failing = self.every_s, False
                except Exception as exc:  # noqa: BLE001 - never into the main thread; try again soon
                    locked = isinstance(exc, sqlite3.Error) and _is_locked(exc)
                    if locked or failing:
                        log.debug("%s: heartbeat of cell %s failed (%s); trying again", self.path, self.hash, exc)
                    else:  # the first failure of a streak that is not just another writer's lock
                        log.warning("%s: could not refresh the claim on cell %s (%s); trying again", self.path,
                                    self.hash, exc)
                    failing = failing or not locked
                    wait = min(self.every_s, 1.0)
        except BaseException as exc:  # noqa: BLE001 - interpreter shutdown and the like: end quietly
            log.debug("claim keeper of %s stopped: %r", self.hash, exc)
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass

    def _beat(self, conn: sqlite3.Connection) -> bool:
        """Refresh the heartbeat; False (and stop) when the claim is no longer ours."""
        cur = conn.execute(
            "UPDATE results SET heartbeat_at = ? WHERE config_hash = ? AND owner = ? AND status = 'running'",
            (_now(), self.hash, self.owner),
        )
        if cur.rowcount == 1:
            return True
        row = conn.execute("SELECT status, owner FROM results WHERE config_hash = ?", (self.hash,)).fetchone()
        self.lost = True
        if row is not None and row[1] != self.owner:
            log.warning("%s: cell %s was taken over by %s; no longer keeping this claim alive",
                        self.path, self.hash, row[1] or "another run")
        else:
            log.debug("%s: cell %s is no longer running (%s); heartbeat stopped", self.path, self.hash,
                      row[0] if row else "no row")
        return False


class ResultStore:
    """One results file.

    ``create=False`` refuses a missing file instead of making one. ``readonly=True`` opens
    an existing file for reading only (``mode=ro``; on read-only media ``immutable=1``, or a
    private copy when a ``-wal`` file holds rows not yet in the main file): for reports,
    exports and merge sources; every write then raises UsageError. ``claim_ttl_s``: a
    ``running`` row of another owner whose heartbeat is older than this is abandoned.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False,
                 claim_ttl_s: float = _CLAIM_TTL_S) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.claim_ttl_s = float(claim_ttl_s)
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._version = SCHEMA_VERSION
        self._select = ", ".join(_ROW_COLUMNS)
        if not self.path.exists():
            if not create or readonly:
                raise UsageError(f"{self.path}: no such results file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"{self.path}: cannot create folder {self.path.parent} ({exc.strerror or exc})") from None
        elif self.path.is_dir():
            raise UsageError(f"{self.path}: is a directory, not a results file")
        else:
            self._check_header()
        self._conn = self._connect(create and not readonly)

    # -- opening -----------------------------------------------------------------------

    def _check_header(self) -> None:
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read results file ({exc.strerror})") from None
        if head and head != _SQLITE_MAGIC:
            raise UsageError(f"{self.path}: not a results database (not an SQLite file)")

    def _sidecars(self) -> list[Path]:
        """The ``-wal`` and ``-shm`` files next to the results file that exist now."""
        return [p for p in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()]

    def _heal_sidecars(self) -> None:
        """A ``-wal``/``-shm`` left read-only by a run on a read-only file makes every write
        fail once the file is writable again: give it the file's permissions (when ours)."""
        if not self.path.exists() or not _writable(self.path):
            return
        for side in self._sidecars():
            if _writable(side):
                continue
            try:
                os.chmod(side, stat.S_IMODE(self.path.stat().st_mode))
                log.info("%s: made %s writable again (left read-only by a run on a read-only copy)", self.path, side)
            except OSError as exc:
                log.warning("%s: %s is read-only (%s): writes will fail until it is removed, when no other "
                            "process uses %s", self.path, side, exc.strerror or exc, self.path)

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self.readonly:
            conn = self._connect_readonly()
        else:
            self._heal_sidecars()
            try:
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.Error as exc:
                raise UsageError(f"{self.path}: cannot open results database ({exc})") from None
        conn.text_factory = _text
        try:
            _retry(lambda: self._init_schema(conn, create), self.path, "open it")
        except UsageError:
            self._close(conn)
            raise
        except sqlite3.OperationalError as exc:  # unreadable, read-only media, disk full while creating, ...
            self._close(conn)
            raise self._failure(exc, "open it as a results database") from None
        except sqlite3.DatabaseError as exc:  # corrupt
            self._close(conn)
            raise UsageError(f"{self.path}: not a valid results database ({exc})") from None
        if not self.readonly:
            self._choose_journal(conn)
        try:
            conn.execute("PRAGMA synchronous=FULL")  # each commit is on disk before it returns
        except sqlite3.Error as exc:  # pragma: no cover - a per-connection setting
            log.debug("%s: PRAGMA synchronous=FULL failed (%s)", self.path, exc)
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """Open for reading only: ``mode=ro``; where that cannot work (the file or its folder
        not writable, no ``-shm``), ``immutable=1``, or a private copy of the file and its
        ``-wal`` when that holds rows not yet checkpointed (``immutable`` would miss them)."""
        uri = self.path.absolute().as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"{self.path}: cannot open results database ({exc})") from None
        try:
            _retry(lambda: conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone(), self.path, "read it")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if _writable(self.path) and _writable(self.path.parent):
                raise UsageError(f"{self.path}: cannot open results database ({exc})") from None
            first = exc
        except sqlite3.DatabaseError:  # not a database: _init_schema reports it
            return conn
        wal = Path(f"{self.path}-wal")
        try:
            if wal.exists() and wal.stat().st_size > 0:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="sjlt-results-")
                copy = Path(self._tmpdir.name) / self.path.name
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, Path(f"{copy}-wal"))
                log.info("%s: read-only media with a -wal file: reading a private copy (%s)", self.path, first)
                return sqlite3.connect(copy, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            log.debug("%s: read-only media (%s): opening it immutable", self.path, first)
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"{self.path}: cannot open results database for reading ({exc})") from None

    def _choose_journal(self, conn: sqlite3.Connection) -> None:
        """WAL on a local filesystem; a rollback journal (DELETE) on a network one, said once."""
        fstype = filesystem_type(self.path.parent)
        network = is_network_filesystem(fstype)
        mode = "delete" if network else "wal"
        if network and str(self.path) not in _warned_network:
            _warned_network.add(str(self.path))
            log.warning(
                "%s is on a network filesystem (%s): using a rollback journal instead of WAL. SQLite supports "
                "one writing host per file there; for several hosts give each shard its own --results file "
                "and combine them with `sjlt results merge`", self.path, fstype)
        if not (_writable(self.path) and _writable(self.path.parent)):
            log.debug("%s: not writable; journal mode left as it is", self.path)
            return
        try:
            got = _retry(lambda: conn.execute(f"PRAGMA journal_mode={mode.upper()}").fetchone()[0],
                         self.path, f"switch to journal mode {mode}", max_wait_s=5.0)
        except (sqlite3.Error, UsageError) as exc:  # e.g. a read-only file: reading still works
            log.warning("%s: cannot switch to journal mode %s (%s)", self.path, mode, exc)
            return
        if str(got).lower() != mode:
            log.warning("%s: journal mode is %s, not %s", self.path, got, mode)

    def _init_schema(self, conn: sqlite3.Connection, create: bool) -> None:
        """Check our tables and version; create them only in a database with no tables."""
        tables = self._tables(conn)
        if not tables and not create:
            raise UsageError(f"{self.path}: empty file, not a results database")
        if not tables:
            # IMMEDIATE serialises two processes creating the same new file.
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._tables(conn):
                    for stmt in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(stmt)
                    log.debug("created results store %s (schema %d)", self.path, SCHEMA_VERSION)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            tables = self._tables(conn)
        if not {"meta", "results"} <= tables:
            raise UsageError(
                f"{self.path}: SQLite file without a results schema "
                f"(tables: {', '.join(sorted(map(str, tables)))}); refusing to modify it"
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            version = int(row[0]) if row else None
        except (TypeError, ValueError):
            version = None
        if version is None:
            raise UsageError(f"{self.path}: results database has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path}: results schema version {version} is newer than this "
                f"spikingjelly-lt supports ({SCHEMA_VERSION}); upgrade spikingjelly-lt"
            )
        if version < 1:
            raise UsageError(f"{self.path}: unknown results schema version {version}")
        self._version = version
        have = {r[1] for r in conn.execute("PRAGMA table_info(results)").fetchall()}
        self._select = ", ".join(c if c in have else f"NULL AS {c}" for c in _ROW_COLUMNS)

    def _upgrade(self) -> None:
        """Upgrade an older file before its first write, in one transaction.

        1 -> 2 adds the (nullable) ``cell`` column; rows written under schema 1 keep their
        flat, normalized config and read as before. 2 -> 3 rebuilds ``results`` with the
        CHECK constraint that admits ``interrupted`` (SQLite cannot alter a constraint),
        copying every row as it is. 3 -> 4 adds the nullable ``owner``, ``heartbeat_at`` and
        ``checksum`` columns: older rows have no checksum and are read as before. Another
        process may have upgraded the file since we opened it: the version is read again
        inside the transaction.
        """
        if self._version >= SCHEMA_VERSION:
            return
        _retry(self._upgrade_once, self.path, "upgrade its schema")

    def _upgrade_once(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if version < SCHEMA_VERSION:
                have = {r[1] for r in conn.execute("PRAGMA table_info(results)").fetchall()}
                if "cell" not in have:
                    conn.execute("ALTER TABLE results ADD COLUMN cell TEXT")
                if version < 3:
                    cols = ", ".join(_COLUMNS)
                    conn.execute("DROP TABLE IF EXISTS results_new")
                    conn.execute(_RESULTS_TABLE.format(name="results_new"))
                    conn.execute(f"INSERT INTO results_new ({cols}) SELECT {cols} FROM results")
                    conn.execute("DROP TABLE results")
                    conn.execute("ALTER TABLE results_new RENAME TO results")
                    conn.execute("CREATE INDEX results_status ON results (status)")
                else:
                    for col in ("owner", "heartbeat_at", "checksum"):
                        if col not in have:
                            conn.execute(f"ALTER TABLE results ADD COLUMN {col} TEXT")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        if version < SCHEMA_VERSION:
            log.info("%s: results schema upgraded from version %d to %d", self.path, version, SCHEMA_VERSION)
        self._version = SCHEMA_VERSION
        self._select = ", ".join(_ROW_COLUMNS)

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {r[0] for r in rows}

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        """Roll back an open transaction; SQLite may have rolled it back already (disk full)."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("rollback failed: %s", exc)

    @staticmethod
    def _close(conn: sqlite3.Connection) -> None:
        try:
            conn.close()
        except sqlite3.Error:  # pragma: no cover
            pass

    def _failure(self, exc: sqlite3.Error, what: str) -> UsageError:
        """One line for a write (or read) SQLite refused: the file, the cause, what to do."""
        name = (getattr(exc, "sqlite_errorname", None) or "").upper()
        low = str(exc).lower()
        folder = self.path.parent
        if name.startswith("SQLITE_FULL") or "disk is full" in low:
            hint = (f"the disk holding {folder} is full: free space there (or put --results on another disk) and "
                    "rerun the same command; the rows written before are kept")
        elif name.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low:
            stuck = [str(s) for s in self._sidecars() if not _writable(s)]
            if stuck and _writable(self.path):
                hint = (f"{', '.join(stuck)} left read-only by an earlier run: remove it when no other process "
                        f"uses {self.path.name} (or chmod u+w it)")
            else:
                hint = ("the file (or its folder, or the disk) is read-only: make it writable "
                        f"(chmod u+w {self.path}) or copy it to a writable folder and pass the copy")
        elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in low:
            hint = (f"SQLite cannot open it or create its journal next to it (read-only folder or media?): "
                    f"make {folder} writable, or copy the file to a writable folder and pass the copy; "
                    "reports and exports read it as it is")
        elif name.startswith("SQLITE_IOERR") or "i/o error" in low:
            hint = (f"disk I/O error: check the disk holding {folder} (full? read-only? gone?) or copy the file "
                    "to another disk and pass the copy")
        elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in low or "not a database" in low:
            hint = (f"the file is damaged: `sjlt results verify {self.path}` says what is readable; restore it "
                    "from a copy, or merge its shards again")
        else:
            hint = "rerun the same command; if it persists, copy the file elsewhere and pass the copy"
        return UsageError(f"{self.path}: cannot {what} ({exc}); {hint}")

    def _read(self, fn: Callable[[], _T], what: str = "read it") -> _T:
        """Run a read, waiting out another process's lock; SQLite errors become one line."""
        try:
            return _retry(fn, self.path, what)
        except sqlite3.Error as exc:
            raise self._failure(exc, what) from None

    @contextmanager
    def _write(self, what: str = "write to it") -> Iterator[sqlite3.Connection]:
        """One committed transaction. Taking the write lock (BEGIN IMMEDIATE) and COMMIT wait
        out another process's lock; the body is never retried: once BEGIN IMMEDIATE holds the
        lock, the statements inside cannot meet "database is locked". Any other SQLite error
        (disk full, read-only, I/O) rolls back and becomes one UsageError line."""
        if self.readonly:
            raise UsageError(f"{self.path}: opened read-only; cannot {what}")
        try:
            self._upgrade()
            _retry(lambda: self._conn.execute("BEGIN IMMEDIATE"), self.path, what)
        except sqlite3.Error as exc:
            self._rollback(self._conn)
            raise self._failure(exc, what) from None
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._rollback(self._conn)
            raise self._failure(exc, what) from None
        except BaseException:
            self._rollback(self._conn)
            raise
        try:
            _retry(lambda: self._conn.execute("COMMIT"), self.path, what)
        except BaseException as exc:
            self._rollback(self._conn)
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc, what) from None
            raise

    def close(self) -> None:
        """Close the connection (committed rows are already on disk)."""
        self._close(self._conn)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    # -- claims ------------------------------------------------------------------------

    def claim(self, config: dict[str, Any], env: dict[str, Any] | None = None,
              cell: dict[str, Any] | None = None, *, force: bool = False) -> str | None:
        """Claim the cell for this process: mark it ``running``, owned by this store; return its hash.

        One ``BEGIN IMMEDIATE`` transaction, so of two processes claiming one cell exactly
        one gets it. Returns None, writing nothing, when the row is ``done`` (unless
        ``force``: the ``--rerun`` path) or when another owner holds a live claim (its
        heartbeat younger than ``claim_ttl_s`` and, on this host, its PID alive). A dead or
        expired claim, and a ``failed``/``interrupted`` row, is taken over (logged at INFO).
        Keep the claim alive while the cell runs with :meth:`keep_alive`.
        """
        return self._claim(config, env, cell, force=force, steal=False)

    def begin(self, config: dict[str, Any], env: dict[str, Any] | None = None,
              cell: dict[str, Any] | None = None) -> str:
        """Mark the cell ``running`` owned by this store, whatever its row was (done, or even a
        live claim of another process: logged); return its hash.

        ``config`` is the cell's identity (what is hashed); ``cell`` its full resolved
        description (every field, the plugins and pruner that ran it, its baselines).
        Runs that may share a file should use :meth:`claim`.
        """
        h = self._claim(config, env, cell, force=True, steal=True)
        assert h is not None
        return h

    def claim_holder(self, owner: str | None, heartbeat_at: str | None) -> tuple[bool, str]:
        """Whether a ``running`` row's claim is live, and why not: ``(live, reason)``."""
        if not owner:
            return False, "left running by an earlier run that recorded no owner"
        if owner == self.owner:
            return True, "this store's own claim"
        age = _age_s(heartbeat_at)
        if age is None:
            return False, "it has no readable heartbeat"
        if age > self.claim_ttl_s:
            return False, f"its last heartbeat is {age:.0f} s old (limit {self.claim_ttl_s:.0f} s)"
        host, _, rest = owner.rpartition(":")[0].rpartition(":")
        try:
            pid = int(rest)
        except ValueError:
            return True, "live heartbeat"
        if host == self.host and not pid_alive(pid):
            return False, f"its process {pid} on this host is gone"
        if host == self.host and pid == os.getpid() and not any(k.alive and k.owner == owner for k in list(_KEEPERS)):
            # this very process claimed it from another store object whose run has ended (an
            # exception, a second call of the Python API): nobody keeps it alive any more
            return False, "an earlier run of this process that no longer keeps it"
        return True, f"heartbeat {max(age, 0.0):.0f} s ago"

    def _claim(self, config: dict[str, Any], env: dict[str, Any] | None, cell: dict[str, Any] | None,
               *, force: bool, steal: bool) -> str | None:
        h = config_hash(config)
        cfg_text, env_text = canonical_json(config), canonical_json(env or {})
        cell_text = None if cell is None else canonical_json(cell)
        with self._write(f"claim cell {h}") as conn:
            cur = conn.execute("SELECT status, owner, heartbeat_at FROM results WHERE config_hash = ?",
                               (h,)).fetchone()
            if cur is not None:
                status, owner, heartbeat_at = cur
                if status == "done" and not force:
                    log.debug("cell %s already done; not claiming it", h)
                    return None
                if status == "running" and owner != self.owner:
                    live, why = self.claim_holder(owner, heartbeat_at)
                    if live and not steal:
                        log.info("%s: cell %s is being run by %s (%s); leaving it to that run", self.path, h, owner, why)
                        return None
                    if live:
                        log.warning("%s: cell %s was being run by %s (%s); taking it over (begin)", self.path, h,
                                    owner, why)
                    else:
                        log.info("%s: taking over cell %s from %s (%s)", self.path, h, owner or "an earlier run", why)
            now = _now()
            conn.execute(
                "INSERT INTO results (config_hash, config, metrics, status, reason, started_at, finished_at, env,"
                " cell, owner, heartbeat_at, checksum) VALUES (?, ?, NULL, 'running', NULL, ?, NULL, ?, ?, ?, ?, ?)"
                " ON CONFLICT (config_hash) DO UPDATE SET config = excluded.config,"
                " metrics = NULL, status = 'running', reason = NULL,"
                " started_at = excluded.started_at, finished_at = NULL, env = excluded.env,"
                " cell = excluded.cell, owner = excluded.owner, heartbeat_at = excluded.heartbeat_at,"
                " checksum = excluded.checksum",
                (h, cfg_text, now, env_text, cell_text, self.owner, now,
                 _checksum(cfg_text, None, "running", None, env_text, cell_text)),
            )
        log.debug("cell %s running (owner %s)", h, self.owner)
        return h

    def heartbeat(self, h: str) -> bool:
        """Refresh the heartbeat of this store's claim on ``h``; False when it is no longer ours
        (finished, or taken over by another process)."""
        with self._write(f"refresh the claim on cell {h}") as conn:
            cur = conn.execute(
                "UPDATE results SET heartbeat_at = ? WHERE config_hash = ? AND owner = ? AND status = 'running'",
                (_now(), h, self.owner),
            )
            return cur.rowcount == 1

    def keep_alive(self, h: str, every_s: float = 30.0) -> ClaimKeeper:
        """A started :class:`ClaimKeeper` refreshing this store's claim on ``h`` every ``every_s``
        seconds from a daemon thread; use it as ``with store.keep_alive(h): ...``."""
        if self.readonly:
            raise UsageError(f"{self.path}: opened read-only; cannot keep a claim")
        if self.claim_ttl_s <= every_s:
            log.warning("%s: heartbeat every %.0f s is not shorter than the claim TTL %.0f s", self.path,
                        every_s, self.claim_ttl_s)
        return ClaimKeeper(self.path, h, self.owner, every_s=every_s).start()

    # -- cell lifecycle ----------------------------------------------------------------

    def finish(self, h: str, metrics: dict[str, Any]) -> bool:
        """Mark the cell ``done`` with its metrics; True if written.

        A row already ``done`` is kept as it is (logged). A row another process has taken
        over is still recorded ``done`` (this run finished; logged), unless it is done."""
        return self._end(h, "done", metrics, None)

    def fail(self, h: str, reason: str, metrics: dict[str, Any] | None = None) -> bool:
        """Mark this store's claimed cell ``failed`` with a reason (and whatever metrics it got);
        True if written. A ``done`` row, or one another process owns, is left as it is (logged)."""
        return self._end(h, "failed", metrics, reason)

    def interrupt(self, h: str, reason: str = "interrupted (Ctrl-C or SIGTERM); rerun the same command to resume") -> bool:
        """Mark this store's claimed cell ``interrupted`` (not done: a rerun resumes it); True if
        written. A ``done`` row, or one another process owns, is left as it is (logged)."""
        return self._end(h, "interrupted", None, reason)

    def _end(self, h: str, status: str, metrics: dict[str, Any] | None, reason: str | None) -> bool:
        metrics_text = None if metrics is None else canonical_json(metrics)
        with self._write(f"record cell {h} as {status}") as conn:
            cur = conn.execute("SELECT status, owner, config, env, cell FROM results WHERE config_hash = ?",
                               (h,)).fetchone()
            if cur is None:
                raise KeyError(f"no cell {h!r} in {self.path}; call begin() first")
            old, owner, config, env, cell = cur
            if old == "done":
                (log.debug if status == "done" and owner == self.owner else log.warning)(
                    "%s: cell %s is already done (by %s); not overwriting it with %s", self.path, h,
                    owner or "an earlier run", status)
                return False
            if owner != self.owner:
                if status != "done":
                    log.warning("%s: cell %s is now owned by %s; not marking it %s", self.path, h,
                                owner or "another run", status)
                    return False
                log.warning("%s: cell %s was taken over by %s; recording this run's finished result anyway",
                            self.path, h, owner or "another run")
            if any(isinstance(v, bytes) for v in (config, env, cell)):
                raise UsageError(f"{self.path}: row {_row_name((h,))} is damaged (not valid UTF-8); "
                                 f"rerun its cell with --rerun or restore the file from a copy")
            conn.execute(
                "UPDATE results SET status = ?, metrics = ?, reason = ?, finished_at = ?, owner = ?,"
                " heartbeat_at = ?, checksum = ? WHERE config_hash = ?",
                (status, metrics_text, reason, _now(), self.owner, None,
                 _checksum(config, metrics_text, status, reason, env, cell), h),
            )
        log.debug("cell %s %s", h, status)
        return True

    # -- reading -----------------------------------------------------------------------

    def status(self, h: str) -> str | None:
        """``'running'``, ``'done'``, ``'failed'``, ``'interrupted'``, or None for an unknown cell."""
        row = self._read(lambda: self._conn.execute(
            "SELECT status FROM results WHERE config_hash = ?", (h,)).fetchone())
        return row[0] if row else None

    def is_done(self, config_or_hash: dict[str, Any] | str) -> bool:
        """True only for a finished cell; ``running`` rows (maybe from a dead run) are not."""
        h = config_or_hash if isinstance(config_or_hash, str) else config_hash(config_or_hash)
        return self.status(h) == "done"

    def _checked(self, raw: Sequence[Any]) -> dict[str, Any]:
        """Decode a stored row, or raise one UsageError line naming the file and the row."""
        why = _damage(raw)
        if why is not None:
            raise UsageError(
                f"{self.path}: row {_row_name(raw)} is damaged ({why}); rerun its cell with --rerun, or restore "
                f"the file from a copy (`sjlt results verify {self.path}` lists every damaged row)"
            )
        return _decode_row(raw)

    def get(self, h: str) -> dict[str, Any] | None:
        """The decoded row (config, metrics and env as dicts), or None; a damaged row raises UsageError."""
        row = self._read(lambda: self._conn.execute(
            f"SELECT {self._select} FROM results WHERE config_hash = ?", (h,)).fetchone())
        return self._checked(row) if row else None

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """All decoded rows (optionally one status), oldest first; a damaged row raises UsageError."""
        return [self._checked(r) for r in self._raw_rows(status)]

    def _raw_rows(self, status: str | None = None) -> list[tuple]:
        """Stored rows as tuples of ``_ROW_COLUMNS`` (unchecked)."""
        sql = f"SELECT {self._select} FROM results"
        args: tuple = ()
        if status is not None:
            check_choice("status", status, STATUSES)
            sql += " WHERE status = ?"
            args = (status,)
        return self._read(lambda: self._conn.execute(sql + " ORDER BY started_at, config_hash", args).fetchall())

    def count(self, status: str | None = None) -> int:
        """Number of rows (optionally of one status)."""
        if status is None:
            return self._read(lambda: self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        check_choice("status", status, STATUSES)
        sql = "SELECT COUNT(*) FROM results WHERE status = ?"
        return self._read(lambda: self._conn.execute(sql, (status,)).fetchone()[0])

    def verify(self) -> dict[str, Any]:
        """Check the whole file: SQLite's ``PRAGMA integrity_check`` and every row's checksum.

        Returns ``{"file", "schema_version", "integrity" (list of SQLite's findings; ["ok"]
        when sound), "rows", "ok", "unchecked" (rows from before schema 4: no checksum),
        "damaged": [{"config_hash", "problem"}]}``. Never raises for damage it can describe.
        """
        out: dict[str, Any] = {"file": str(self.path), "schema_version": self._version, "integrity": [],
                               "rows": 0, "ok": 0, "unchecked": 0, "damaged": []}
        try:
            found = self._read(lambda: self._conn.execute("PRAGMA integrity_check").fetchall(), "check it")
            out["integrity"] = [str(r[0]) if not isinstance(r[0], bytes) else repr(bytes(r[0])) for r in found]
        except UsageError as exc:
            out["integrity"] = [str(exc)]
        try:
            raws = self._raw_rows()
        except UsageError as exc:
            out["integrity"].append(f"rows unreadable: {exc}")
            return out
        for raw in raws:
            out["rows"] += 1
            why = _damage(raw)
            if why is not None:
                out["damaged"].append({"config_hash": _row_name(raw), "problem": why})
                continue
            out["ok"] += 1
            if raw[len(_COLUMNS)] is None:
                out["unchecked"] += 1
        return out

    # -- export / merge ----------------------------------------------------------------

    def export(self, fmt: str, out: str | os.PathLike[str] | TextIO, *, history: bool = False) -> None:
        """Write all rows as ``jsonl`` (one object a line), ``json`` (one array) or ``csv``
        (flattened columns); with ``history``, one record per trained epoch instead
        (:func:`history_rows`: the cell keys, then round, epoch, loss, train and validation
        accuracy, mean firing rate, lr, images/s).

        ``out`` is a path or an open text stream. CSV columns are the row fields, then
        ``config.*``, ``metrics.*`` and ``env.*``; nested values are JSON strings.
        """
        check_choice("export format", fmt, EXPORT_FORMATS)
        rows = self.rows()
        write = _EXPORTERS[fmt] if not history else _HISTORY_EXPORTERS[fmt]
        if isinstance(out, (str, os.PathLike)):
            with open(out, "w", newline="", encoding="utf-8") as fh:
                write(rows, fh)
        else:
            write(rows, out)

    def _merge_raw(self, raw_rows: Sequence[Sequence[Any]]) -> MergeStats:
        """Keep, per hash, the best of the existing row and the incoming ones (``_ROW_COLUMNS``
        tuples). Merged rows carry no claim; a row without a checksum gets one."""
        added = replaced = kept = 0
        sql_get = f"SELECT {', '.join(_ROW_COLUMNS)} FROM results WHERE config_hash = ?"
        sql_put = (
            f"INSERT OR REPLACE INTO results ({', '.join(_ROW_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(_ROW_COLUMNS))})"
        )
        with self._write("merge rows into it") as conn:
            for raw in raw_rows:
                raw = tuple(raw)[: len(_ROW_COLUMNS)]
                raw = raw + (None,) * (len(_ROW_COLUMNS) - len(raw))
                cur = conn.execute(sql_get, (raw[0],)).fetchone()
                if cur is None:
                    added += 1
                elif _row_key(raw) > _row_key(tuple(cur)):
                    replaced += 1
                else:
                    kept += 1
                    continue
                if raw[-1] is None:
                    d = dict(zip(_ROW_COLUMNS, raw))
                    raw = raw[:-1] + (_checksum(d["config"], d["metrics"], d["status"], d["reason"], d["env"],
                                                d["cell"]),)
                conn.execute(sql_put, raw)
        return MergeStats(added, replaced, kept)


def _plain(value: Any) -> Any:
    """Non-finite floats become None so exported JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _export_jsonl(rows: list[dict[str, Any]], fh: TextIO) -> None:
    fh.writelines(json.dumps(_plain(row), sort_keys=True, allow_nan=False) + "\n" for row in rows)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _export_csv(rows: list[dict[str, Any]], fh: TextIO) -> None:
    fixed = [c for c in _COLUMNS if c not in ("config", "metrics", "env")]
    nested = {g: sorted({k for r in rows for k in r[g]}) for g in ("config", "metrics", "env")}
    header = fixed + [f"{g}.{k}" for g, keys in nested.items() for k in keys]
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line = [_cell(r[c]) for c in fixed]
        line += [_cell(r[g].get(k)) for g, keys in nested.items() for k in keys]
        writer.writerow(line)


def _export_json(rows: list[dict[str, Any]], fh: TextIO) -> None:
    json.dump(_plain(rows), fh, sort_keys=True, allow_nan=False, indent=1)
    fh.write("\n")


HISTORY_KEYS = ("config_hash", "arch", "dataset", "method", "sparsity", "seed", "status", "round", "epoch",
                "loss", "train_acc", "val_acc", "firing_rate", "lr", "images_per_s")


def history_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per trained epoch of every row (``metrics.history``), keyed by its cell."""
    from spikingjelly_lt.cell import flatten

    out = []
    for r in rows:
        c = flatten(r.get("config") or {})
        for h in (r.get("metrics") or {}).get("history") or []:
            if h.get("final"):
                continue  # the end-of-training validation pass of a run without epochs
            rec = {"config_hash": r["config_hash"], "status": r["status"],
                   **{k: c.get(k) for k in ("arch", "dataset", "method", "sparsity", "seed")}}
            rec.update({k: h.get(k) for k in HISTORY_KEYS if k not in rec})
            out.append(rec)
    return out


def _history_csv(rows: list[dict[str, Any]], fh: TextIO) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(HISTORY_KEYS)
    for rec in history_rows(rows):
        writer.writerow([_cell(_plain(rec.get(k))) for k in HISTORY_KEYS])


_EXPORTERS = {"jsonl": _export_jsonl, "json": _export_json, "csv": _export_csv}
_HISTORY_EXPORTERS = {"jsonl": lambda rows, fh: _export_jsonl(history_rows(rows), fh),
                      "json": lambda rows, fh: _export_json(history_rows(rows), fh),
                      "csv": _history_csv}


def merge(sources: Sequence[str | os.PathLike[str]], dest: str | os.PathLike[str]) -> MergeStats:
    """Merge results files into ``dest`` (created if missing).

    Per config hash the winner is: a ``done`` row over ``failed`` over ``interrupted`` over
    ``running``, then
    the newest (``finished_at``, then ``started_at``); ties break on row content, so the
    result does not depend on source order and merging again changes nothing. Sources are
    opened read-only and may be of any older schema; a damaged source row raises UsageError
    before anything is written.
    """
    total = MergeStats()
    dest_path = Path(dest)
    loaded: list[tuple[Path, list[tuple]]] = []
    for src in sources:  # every source read (and checked) before the destination is touched
        src_path = Path(src)
        if src_path.exists() and dest_path.exists() and src_path.samefile(dest_path):
            log.debug("merge: skipping %s (it is the destination)", src_path)
            continue
        with ResultStore(src_path, readonly=True) as store:
            raw = store._raw_rows()
            for r in raw:  # a damaged source row is refused, never copied
                store._checked(r)
        loaded.append((src_path, raw))
    with ResultStore(dest) as out:
        for src_path, raw in loaded:
            stats = out._merge_raw(raw)
            log.info(
                "merged %s into %s: %d added, %d replaced, %d kept",
                src_path,
                out.path,
                stats.added,
                stats.replaced,
                stats.kept,
            )
            total = MergeStats(
                total.added + stats.added,
                total.replaced + stats.replaced,
                total.kept + stats.kept,
            )
    return total
