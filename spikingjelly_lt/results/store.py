"""SQLite results store: one row per benchmark cell, keyed by the hash of its config.

Every write is its own committed transaction in WAL mode, so a process killed mid-run
keeps every cell it finished. A row left ``running`` by a dead process is simply not
``done``: a resume reruns it; a run stopped by Ctrl-C or SIGTERM marks its row
``interrupted`` (schema 3) on the way out. Two processes may write one file at once
(shards on shared storage): WAL, a busy timeout and bounded retries on "database is
locked" make every write land. Files that are not ours (not SQLite, foreign tables, a
newer schema) raise :class:`~spikingjelly_lt.errors.UsageError` and are never touched.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TextIO

from spikingjelly_lt.errors import UsageError, check_choice

__all__ = [
    "EXPORT_FORMATS",
    "SCHEMA_VERSION",
    "STATUSES",
    "MergeStats",
    "ResultStore",
    "canonical_json",
    "config_hash",
    "merge",
]

log = logging.getLogger("spikingjelly_lt")

# 2 adds the ``cell`` column: the fully resolved cell of each row; 3 allows the status
# ``interrupted`` (a CHECK constraint cannot be altered in SQLite: the table is rebuilt).
SCHEMA_VERSION = 3
STATUSES = ("running", "done", "failed", "interrupted")
EXPORT_FORMATS = ("jsonl", "json", "csv")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 60.0
_LOCK_RETRIES = 8  # on top of the busy timeout: "database is locked" can skip the busy handler
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
_RESULTS_TABLE = f"""CREATE TABLE {{name}} (
    config_hash TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    metrics     TEXT,
    status      TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    reason      TEXT,
    started_at  TEXT,
    finished_at TEXT,
    env         TEXT,
    cell        TEXT
)"""
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{_RESULTS_TABLE.format(name="results")};
CREATE INDEX results_status ON results (status);
INSERT INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
_STATUS_RANK = {"running": 0, "interrupted": 1, "failed": 2, "done": 3}


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def _retry(fn, path: Path, what: str):
    """Run ``fn()``; on "database is locked/busy" wait (exponential, jittered) and retry."""
    for attempt in range(_LOCK_RETRIES + 1):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
            if attempt == _LOCK_RETRIES:
                raise UsageError(
                    f"{path}: results file stayed locked by another process while trying to {what} "
                    f"({_LOCK_RETRIES + 1} tries); is a writer stuck? ({exc})"
                ) from None
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            log.debug("%s: %s while trying to %s; retry %d in %.2f s", path, exc, what, attempt + 1, delay)
            time.sleep(delay)


def _json_default(obj: Any) -> Any:
    """Encode the non-JSON values a config or metrics dict tends to carry."""
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):  # numpy scalars/arrays, torch tensors
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} value {obj!r} as JSON")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the same dict always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: dict[str, Any]) -> str:
    """Stable cell id: the first 16 hex digits of sha256 of the config's canonical JSON."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]


def _now() -> str:
    """UTC timestamp, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _decode_row(raw: sqlite3.Row | tuple) -> dict[str, Any]:
    row = dict(zip(_COLUMNS, raw))
    row["config"] = json.loads(row["config"])
    for key in ("metrics", "env", "cell"):
        row[key] = json.loads(row[key]) if row[key] else {}
    return row


def _row_key(raw: tuple) -> tuple:
    """Total order for merging: done > failed > running, then newest, then content."""
    row = dict(zip(_COLUMNS, raw))
    return (
        _STATUS_RANK.get(row["status"], -1),
        row["finished_at"] or "",
        row["started_at"] or "",
        tuple("" if v is None else str(v) for v in raw),
    )


@dataclass(frozen=True)
class MergeStats:
    """What a merge did to the destination."""

    added: int = 0
    replaced: int = 0
    kept: int = 0


class ResultStore:
    """One results file. ``create=False`` refuses a missing file instead of making one."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise UsageError(f"{self.path}: no such results file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"{self.path}: cannot create folder {self.path.parent} ({exc.strerror or exc})") from None
        elif self.path.is_dir():
            raise UsageError(f"{self.path}: is a directory, not a results file")
        else:
            self._check_header()
        self._conn = self._connect(create)

    # -- opening -----------------------------------------------------------------------

    def _check_header(self) -> None:
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read results file ({exc.strerror})") from None
        if head and head != _SQLITE_MAGIC:
            raise UsageError(f"{self.path}: not a results database (not an SQLite file)")

    def _connect(self, create: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"{self.path}: cannot open results database ({exc})") from None
        try:
            _retry(lambda: self._init_schema(conn, create), self.path, "open it")
        except UsageError:
            conn.close()
            raise
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, unreadable
            conn.close()
            raise UsageError(f"{self.path}: cannot open results database ({exc})") from None
        except sqlite3.DatabaseError as exc:  # corrupt
            conn.close()
            raise UsageError(f"{self.path}: not a valid results database ({exc})") from None
        try:
            _retry(lambda: conn.execute("PRAGMA journal_mode=WAL"), self.path, "switch to WAL")
        except (sqlite3.OperationalError, UsageError) as exc:  # e.g. a read-only file: reading still works
            log.warning("%s: cannot switch to WAL journal mode (%s)", self.path, exc)
        return conn

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
                conn.execute("ROLLBACK")
                raise
            tables = self._tables(conn)
        if not {"meta", "results"} <= tables:
            raise UsageError(
                f"{self.path}: SQLite file without a results schema "
                f"(tables: {', '.join(sorted(tables))}); refusing to modify it"
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
        self._select = ", ".join(c if c in have else f"NULL AS {c}" for c in _COLUMNS)

    def _upgrade(self) -> None:
        """Upgrade an older file before its first write, in one transaction.

        1 -> 2 adds the (nullable) ``cell`` column; rows written under schema 1 keep their
        flat, normalized config and read as before. 2 -> 3 rebuilds ``results`` with the
        CHECK constraint that admits ``interrupted`` (SQLite cannot alter a constraint),
        copying every row as it is. Another process may have upgraded the file since we
        opened it: the version is read again inside the transaction.
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
                    conn.execute("DROP TABLE IF EXISTS results_v3")
                    conn.execute(_RESULTS_TABLE.format(name="results_v3"))
                    conn.execute(f"INSERT INTO results_v3 ({cols}) SELECT {cols} FROM results")
                    conn.execute("DROP TABLE results")
                    conn.execute("ALTER TABLE results_v3 RENAME TO results")
                    conn.execute("CREATE INDEX results_status ON results (status)")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if version < SCHEMA_VERSION:
            log.info("%s: results schema upgraded from version %d to %d", self.path, version, SCHEMA_VERSION)
        self._version = SCHEMA_VERSION
        self._select = ", ".join(_COLUMNS)

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {r[0] for r in rows}

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction (BEGIN IMMEDIATE waits on the busy timeout, then retries).

        Only taking the write lock is retried, never the body: once BEGIN IMMEDIATE holds
        the lock, the statements inside cannot meet "database is locked".
        """
        self._upgrade()
        _retry(lambda: self._conn.execute("BEGIN IMMEDIATE"), self.path, "write")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        _retry(lambda: self._conn.execute("COMMIT"), self.path, "commit")

    def close(self) -> None:
        """Close the connection (committed rows are already on disk)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # -- cell lifecycle ----------------------------------------------------------------

    def begin(self, config: dict[str, Any], env: dict[str, Any] | None = None,
              cell: dict[str, Any] | None = None) -> str:
        """Mark the cell ``running`` (replacing any earlier row for it); return its hash.

        ``config`` is the cell's identity (what is hashed); ``cell`` its full resolved
        description (every field, the plugins and pruner that ran it, its baselines).
        """
        h = config_hash(config)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO results (config_hash, config, metrics, status, reason, started_at,"
                " finished_at, env, cell) VALUES (?, ?, NULL, 'running', NULL, ?, NULL, ?, ?)"
                " ON CONFLICT (config_hash) DO UPDATE SET config = excluded.config,"
                " metrics = NULL, status = 'running', reason = NULL,"
                " started_at = excluded.started_at, finished_at = NULL, env = excluded.env,"
                " cell = excluded.cell",
                (h, canonical_json(config), _now(), canonical_json(env or {}),
                 None if cell is None else canonical_json(cell)),
            )
        log.debug("cell %s running", h)
        return h

    def finish(self, h: str, metrics: dict[str, Any]) -> None:
        """Mark the cell ``done`` with its metrics."""
        self._end(h, "done", metrics, None)

    def fail(self, h: str, reason: str, metrics: dict[str, Any] | None = None) -> None:
        """Mark the cell ``failed`` with a reason (and whatever metrics it got)."""
        self._end(h, "failed", metrics, reason)

    def interrupt(self, h: str, reason: str = "interrupted (Ctrl-C or SIGTERM); rerun the same command to resume") -> None:
        """Mark a running cell ``interrupted``: not done, so a rerun resumes it."""
        self._end(h, "interrupted", None, reason)

    def _end(self, h: str, status: str, metrics: dict[str, Any] | None, reason: str | None) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE results SET status = ?, metrics = ?, reason = ?, finished_at = ?"
                " WHERE config_hash = ?",
                (status, None if metrics is None else canonical_json(metrics), reason, _now(), h),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no cell {h!r} in {self.path}; call begin() first")
        log.debug("cell %s %s", h, status)

    # -- reading -----------------------------------------------------------------------

    def status(self, h: str) -> str | None:
        """``'running'``, ``'done'``, ``'failed'``, ``'interrupted'``, or None for an unknown cell."""
        row = self._conn.execute(
            "SELECT status FROM results WHERE config_hash = ?", (h,)
        ).fetchone()
        return row[0] if row else None

    def is_done(self, config_or_hash: dict[str, Any] | str) -> bool:
        """True only for a finished cell; ``running`` rows (maybe from a dead run) are not."""
        h = config_or_hash if isinstance(config_or_hash, str) else config_hash(config_or_hash)
        return self.status(h) == "done"

    def get(self, h: str) -> dict[str, Any] | None:
        """The decoded row (config, metrics and env as dicts), or None."""
        row = self._conn.execute(
            f"SELECT {self._select} FROM results WHERE config_hash = ?", (h,)
        ).fetchone()
        return _decode_row(row) if row else None

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """All decoded rows (optionally one status), oldest first."""
        return [_decode_row(r) for r in self._raw_rows(status)]

    def _raw_rows(self, status: str | None = None) -> list[tuple]:
        sql = f"SELECT {self._select} FROM results"
        args: tuple = ()
        if status is not None:
            check_choice("status", status, STATUSES)
            sql += " WHERE status = ?"
            args = (status,)
        return self._conn.execute(sql + " ORDER BY started_at, config_hash", args).fetchall()

    def count(self, status: str | None = None) -> int:
        """Number of rows (optionally of one status)."""
        if status is None:
            return self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        check_choice("status", status, STATUSES)
        sql = "SELECT COUNT(*) FROM results WHERE status = ?"
        return self._conn.execute(sql, (status,)).fetchone()[0]

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

    def _merge_raw(self, raw_rows: Sequence[tuple]) -> MergeStats:
        """Keep, per hash, the best of the existing row and the incoming ones."""
        added = replaced = kept = 0
        sql_get = f"SELECT {', '.join(_COLUMNS)} FROM results WHERE config_hash = ?"
        sql_put = (
            f"INSERT OR REPLACE INTO results ({', '.join(_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(_COLUMNS))})"
        )
        with self._write() as conn:
            for raw in raw_rows:
                raw = tuple(raw)
                cur = conn.execute(sql_get, (raw[0],)).fetchone()
                if cur is None:
                    added += 1
                elif _row_key(raw) > _row_key(tuple(cur)):
                    replaced += 1
                else:
                    kept += 1
                    continue
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
    result does not depend on source order and merging again changes nothing.
    """
    total = MergeStats()
    with ResultStore(dest) as out:
        for src in sources:
            src_path = Path(src)
            if src_path.exists() and out.path.exists() and src_path.samefile(out.path):
                log.debug("merge: skipping %s (it is the destination)", src_path)
                continue
            with ResultStore(src_path, create=False) as store:
                raw = store._raw_rows()
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
