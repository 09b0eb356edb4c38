"""Progress of a matrix on stderr: the ETA of the running cell and of the matrix, a live display on
a terminal or plain lines otherwise, and the ``progress(event, **info)`` callback the runner calls
(which also feeds TensorBoard)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .console import err_console
from .tensorboard_log import TensorBoardLog

__all__ = ["Eta", "matrix_progress"]


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
