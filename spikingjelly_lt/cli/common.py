"""Option parsing and rendering shared by the commands."""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from .console import err_console, out_console

__all__ = ["parse_list", "print_matrix", "matrix_progress", "dump_json", "check_input_file",
           "check_output_file", "check_output_dir", "atomic_text_writer"]


def _probe_writable(folder: Path) -> str | None:
    """None if a file can be created in ``folder`` (tried for real: root, read-only mounts), else why."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sjlt-probe-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_input_file(path, what: str) -> Path:
    """A file the command reads: exists, is a file, can be opened; else one clear error."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{what} {p} is a directory, not a file")
    _opens(p, "rb", f"{what} {p} cannot be read")
    return p


def _opens(p: Path, mode: str, message: str) -> None:
    """Open ``p`` in ``mode`` (reading or appending nothing) or raise one UsageError."""
    try:
        with p.open(mode):
            pass
    except OSError as exc:
        raise UsageError(f"{message} ({exc.strerror or exc})") from None


def check_output_file(path, what: str, *, protect=()) -> Path:
    """A file the command writes: not a folder, not one of its inputs, its folder creatable and writable.

    Checked before any work, so a bad path never costs a run and never touches a file.
    """
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {p} is a directory; give a file name")
    for q in protect:
        if q is not None and p.exists() and Path(q).exists() and p.samefile(q):
            raise UsageError(f"{what} {p} is also an input of this command; refusing to overwrite it")
    _writable_folder(p.parent, f"{what} {p}: cannot create folder {p.parent}",
                     f"{what} {p}: cannot write in folder {p.parent}")
    if p.exists():
        _opens(p, "ab", f"{what} {p} is not writable")
    return p


def check_output_dir(path, what: str) -> Path:
    """A folder the command writes into (created if missing)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {p} exists and is not a folder")
    _writable_folder(p, f"{what} {p}: cannot create it", f"{what} {p}: cannot write in it")
    return p


def _writable_folder(folder: Path, cannot_create: str, cannot_write: str) -> None:
    """Create ``folder`` if missing and prove a file can be written in it (else one UsageError)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{cannot_create} ({exc.strerror or exc})") from None
    why = _probe_writable(folder)
    if why:
        raise UsageError(f"{cannot_write} ({why})")


@contextmanager
def atomic_text_writer(path: Path):
    """Write a text file through a temp file and a rename: an error leaves the old file whole."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def parse_list(text: str | None, kind: str, cast=str) -> list | None:
    """'a,b,c' -> [a, b, c] with ``cast``; a bad item is one clear error."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{kind} {text!r} is empty; give a comma-separated list")
    out = []
    for item in items:
        try:
            out.append(cast(item))
        except ValueError:
            raise UsageError(f"{kind} {item!r} is not a valid {cast.__name__}") from None
    return out


def dump_json(obj) -> str:
    def default(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        return str(o)

    return json.dumps(obj, indent=2, default=default, allow_nan=False)


# short two-line headers: the unit on the second line, so the table fits 80 columns
SHORT_HEADERS = {
    "sparsity": "target\nsparsity", "seeds": "seeds", "top-1 %": "top-1\n%", "paper top-1 %": "paper\ntop-1 %",
    "achieved sparsity %": "achieved\nsparsity %", "energy pJ/img": "energy\npJ/img", "saving × ANN": "saving\n× ANN",
    "saving × SNN": "saving\n× SNN", "firing rate": "firing\nrate", "weight bits": "weight\nbits",
    "time to ticket s": "ticket\ns", "status": "status", "val %": "val\n%", "collapsed": "col-\nlapsed",
}
_KEY_HEADERS = ("method", "sparsity", "setting")  # repeated in every part when the table is split


def matrix_tables(rows: list[dict], title: str, width: int) -> list[Table]:
    """The matrix as one rich table, or as several that share the key columns, each <= ``width``.

    No cell is ever truncated: columns that do not fit move to a second (third...) table
    with the method column repeated, instead of every value becoming ``68.…``.
    """
    from ..results.report import format_matrix, matrix_columns, matrix_table

    table_rows = matrix_table(rows)
    headers, cells = format_matrix(table_rows)
    cols = matrix_columns(table_rows)
    # columns with one value for every row go into the title
    constant = {h: cells[0][i] for i, h in enumerate(headers)
                if h in ("arch", "dataset", "seeds") and cells and len({r[i] for r in cells}) <= 1}
    if "status" in headers and cells and {r[headers.index("status")] for r in cells} == {"done"}:
        constant["status"] = "done"
    keep = [i for i, h in enumerate(headers) if h not in constant]

    short = False

    def label(i: int) -> str:
        return SHORT_HEADERS.get(headers[i], headers[i]) if short else headers[i]

    def col_width(i: int) -> int:
        return max([len(line) for line in label(i).split("\n")] + [len(r[i]) for r in cells]) + 3

    # the full one-line headers when they fit, else the short two-line ones (then split if need be)
    short = sum(col_width(i) for i in keep) + 1 > width
    keys = [i for i in keep if headers[i] in _KEY_HEADERS]
    rest = [i for i in keep if i not in keys]
    budget = width - 1 - sum(col_width(i) for i in keys)
    groups: list[list[int]] = [[]]
    used = 0
    for i in rest:
        w = col_width(i)
        if groups[-1] and used + w > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += w
    if "seeds" in constant:
        constant["seeds"] = f"{constant['seeds']} seed(s)"
    extra = ", ".join(v for k, v in constant.items() if k in ("seeds", "status"))
    tables = []
    for n, group in enumerate(groups, 1):
        part = f" ({n}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=f"{title}{part}" + (f" - {extra}" if extra and n == 1 else ""))
        for i in keys + group:
            table.add_column(label(i), justify="right" if cols[i].numeric else "left", no_wrap=True)
        for row in cells:
            table.add_row(*(row[i] for i in keys + group))
        tables.append(table)
    return tables


def print_matrix(rows: list[dict], title: str = "benchmark matrix", console=None) -> None:
    """The aggregated matrix (report.matrix_table) on stdout, fitted to the terminal's width."""
    console = console or out_console
    for table in matrix_tables(rows, title, console.width):
        console.print(table)


def _fmt_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Eta:
    """ETA of the running cell (from its epochs run here) and of the matrix (from finished cells).

    Cells skipped on resume take no time and do not count. A cell resumed from a checkpoint
    at epoch k counts only the epochs it runs here: its per-epoch time, and the full-cell
    time it stands for (elapsed scaled to all its epochs), feed the estimates. Until one
    cell is done the matrix ETA assumes every remaining cell costs what the running one will.
    """

    def __init__(self, total_cells: int, clock=time.perf_counter) -> None:
        self.total, self.clock = total_cells, clock
        self.finished = 0  # cells run here (not skipped)
        self.skipped = 0
        self.run_seconds = 0.0  # full-cell equivalents of the cells finished here
        self.cell_t0: float | None = None
        self.cell_epochs = 0
        self.cell_resumed = 0  # epochs the running cell had done before this process
        self.cell_reached = 0  # epochs it has reached (its last progress report)

    def start(self, epochs: int, rounds: int, done_epochs: int = 0) -> None:
        self.cell_t0, self.cell_epochs = self.clock(), max(1, epochs * rounds)
        self.cell_resumed = self.cell_reached = min(max(0, done_epochs), self.cell_epochs - 1)

    def skip(self) -> None:
        self.skipped += 1

    def done(self) -> None:
        if self.cell_t0 is not None:
            elapsed = self.clock() - self.cell_t0
            ran = self.cell_reached - self.cell_resumed
            self.run_seconds += elapsed * self.cell_epochs / ran if self.cell_resumed and ran > 0 else elapsed
        self.finished += 1
        self.cell_t0 = None

    def cell(self, epochs_done: int) -> tuple[float | None, float | None]:
        """(seconds left in this cell, seconds left in the matrix)."""
        if self.cell_t0 is None:
            return None, self._rest(None)
        self.cell_reached = max(self.cell_reached, epochs_done)
        ran = epochs_done - self.cell_resumed
        if ran <= 0:
            return None, None
        per_epoch = (self.clock() - self.cell_t0) / ran
        left = per_epoch * (self.cell_epochs - epochs_done)
        return left, left + self._rest(per_epoch * self.cell_epochs)

    def _rest(self, per_cell: float | None) -> float | None:
        remaining = self.total - self.finished - self.skipped - (1 if self.cell_t0 is not None else 0)
        if self.finished:
            per_cell = self.run_seconds / self.finished
        return None if per_cell is None else max(0, remaining) * per_cell


class TensorBoardLog:
    """``--log-dir``: one TensorBoard run per cell (loss, train accuracy, lr, images/s per epoch;
    test top-1, firing rate, sparsity, energy at the end), fed by the progress events."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--log-dir writes TensorBoard scalars and needs the tensorboard package: "
                             "pip install 'spikingjelly-lt[tensorboard]' (or pip install tensorboard)") from None
        self.dir = check_output_dir(log_dir, "log dir")
        self._writer_cls = SummaryWriter
        self.writer = None
        self.epochs = 1

    def __call__(self, event: str, **info) -> None:
        if event == "start":
            c = info["cell"]
            self.close()
            name = f"{c.get('method')}_s{c.get('sparsity', 0):g}_seed{c.get('seed')}"
            self.writer = self._writer_cls(log_dir=str(self.dir / name))
            self.epochs = info.get("epochs") or 1
        elif self.writer is None:
            return
        elif event == "epoch":
            step = info["round"] * self.epochs + info["epoch"]
            for key in ("loss", "train_acc", "val_acc", "firing_rate", "lr", "images_per_s"):
                value = info.get(key)
                if isinstance(value, (list, tuple)):  # lr: one per optimizer / parameter group
                    for j, v in enumerate(value):
                        self.writer.add_scalar(f"train/{key}" + (f"_{j}" if len(value) > 1 else ""), float(v), step)
                elif isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", float(value), step)
        elif event == "measured":
            m = info.get("metrics") or {}
            for key in ("top1", "mean_firing_rate", "sparsity", "energy_pj", "train_seconds"):
                if isinstance(m.get(key), (int, float)):
                    self.writer.add_scalar(f"test/{key}", m[key], 0)
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


@contextmanager
def matrix_progress(total_cells: int, log_dir: Path | None = None, tensorboard: TensorBoardLog | None = None):
    """A progress display on stderr (a live one on a terminal, plain lines otherwise), with the
    ETA of the cell and of the matrix, and the ``progress(event, **info)`` callback (which
    also feeds TensorBoard with ``log_dir``)."""
    tb = tensorboard or (TensorBoardLog(log_dir) if log_dir else None)
    eta = Eta(total_cells)
    with _progress(total_cells, eta) as show:
        def callback(event: str, index: int = 0, total: int = 0, **info) -> None:
            if event == "start":
                eta.start(info["epochs"], info["rounds"], info.get("done_epochs", 0))
            elif event == "skip":
                eta.skip()
            elif event == "done":
                eta.done()
            show(event, index=index, total=total, **info)
            if tb:
                tb(event, **info)
        try:
            yield callback
        finally:
            if tb:
                tb.close()


def _val_text(info: dict) -> str:
    """' val 0.512 fr 0.081' from an epoch event (validation accuracy, mean firing rate), or ''."""
    text = f" val {info['val_acc']:.3f}" if isinstance(info.get("val_acc"), (int, float)) else ""
    if isinstance(info.get("firing_rate"), (int, float)):
        text += f" fr {info['firing_rate']:.3f}"
    return text


@contextmanager
def _progress(total_cells: int, eta: Eta):
    from rich.progress import TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    cells = progress.add_task("cells", total=total_cells, info="")
    current = {"task": None, "epochs": 0}

    def callback(event: str, index: int = 0, total: int = 0, **info) -> None:
        if event == "skip":
            c = info["cell"]
            why = "running in another process" if info.get("why") == "claimed" else "already done (resume)"
            progress.update(cells, advance=1, info=f"{c['method']} {why}")
        elif event == "start":
            c = info["cell"]
            if current["task"] is not None:
                progress.remove_task(current["task"])
            epochs = info["epochs"] * info["rounds"]
            name = f"{c['method']} s={c['sparsity']:g} seed={c['seed']}"
            current["task"] = progress.add_task(name, total=epochs * info["steps"], info="")
            current["epochs"] = info["epochs"]
            progress.update(cells, info=f"running {name}")
        elif event == "step" and current["task"] is not None:
            progress.advance(current["task"])
        elif event == "epoch" and current["task"] is not None:
            _, matrix_left = eta.cell(info["round"] * current["epochs"] + info["epoch"])
            progress.update(
                current["task"],
                info=f"round {info['round']} epoch {info['epoch']} loss {info['loss']:.3f} "
                f"acc {info['train_acc']:.3f}{_val_text(info)} {info['images_per_s']:.0f} img/s",
            )
            progress.update(cells, info=f"matrix eta {_fmt_s(matrix_left)}")
        elif event == "done":
            progress.update(cells, advance=1, info=f"last top-1 {info['top1']:.3f}")

    if not err_console.is_terminal:  # a log file or CI: plain lines instead of a live display
        epochs_of = {"n": 1}

        def plain(event: str, index: int = 0, total: int = 0, **info) -> None:
            tag = f"[{index + 1}/{total}]"
            if event == "skip":
                why = "running in another process, skipped" if info.get("why") == "claimed" else "already done (resume)"
                err_console.print(f"{tag} {info['cell']['method']} {why}", highlight=False, soft_wrap=True)
            elif event == "start":
                c = info["cell"]
                epochs_of["n"] = info["epochs"]
                err_console.print(f"{tag} {c['method']} sparsity={c['sparsity']:g} seed={c['seed']}: "
                                  f"{info['epochs']} epochs x {info['rounds']} round(s)", highlight=False, soft_wrap=True)
            elif event == "epoch":
                cell_left, matrix_left = eta.cell(info["round"] * epochs_of["n"] + info["epoch"])
                err_console.print(f"{tag}   round {info['round']} epoch {info['epoch']} loss {info['loss']:.3f} "
                                  f"acc {info['train_acc']:.3f}{_val_text(info)} {info['images_per_s']:.0f} img/s; "
                                  f"eta cell {_fmt_s(cell_left)}, matrix {_fmt_s(matrix_left)}", highlight=False, soft_wrap=True)
            elif event == "done":
                err_console.print(f"{tag}   done: top-1 {info['top1']:.4f}", highlight=False, soft_wrap=True)

        yield plain
        return
    with progress:
        yield callback
