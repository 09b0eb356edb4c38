"""Option parsing and rendering shared by the commands."""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import UsageError
from .app import err_console, out_console

__all__ = ["parse_list", "print_matrix", "matrix_progress", "dump_json"]


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


def print_matrix(rows: list[dict], title: str = "benchmark matrix") -> None:
    """The aggregated matrix (report.matrix_table) as a rich table on stdout."""
    from ..results.report import format_matrix, matrix_columns, matrix_table

    table_rows = matrix_table(rows)
    headers, cells = format_matrix(table_rows)
    cols = matrix_columns(table_rows)
    # columns with one value for every row go into the title
    constant = {h for i, h in enumerate(headers) if h in ("arch", "dataset", "seeds") and len({r[i] for r in cells}) <= 1}
    table = Table(title=title)
    keep = [i for i, h in enumerate(headers) if h not in constant]
    for i in keep:
        table.add_column(headers[i], justify="right" if cols[i].numeric else "left")
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    out_console.print(table)


@contextmanager
def matrix_progress(total_cells: int):
    """A rich progress display on stderr, and the ``progress(event, **info)`` callback."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    cells = progress.add_task("cells", total=total_cells, info="")
    current = {"task": None, "t0": time.perf_counter()}

    def callback(event: str, index: int = 0, total: int = 0, **info) -> None:
        if event == "skip":
            c = info["config"]
            progress.update(cells, advance=1, info=f"{c['method']} already done (resume)")
        elif event == "start":
            c = info["config"]
            if current["task"] is not None:
                progress.remove_task(current["task"])
            epochs = info["epochs"] * info["rounds"]
            name = f"{c['method']} s={c['sparsity']:g} seed={c['seed']}"
            current["task"] = progress.add_task(name, total=epochs * info["steps"], info="")
            progress.update(cells, info=f"running {name}")
        elif event == "step" and current["task"] is not None:
            progress.advance(current["task"])
        elif event == "epoch" and current["task"] is not None:
            progress.update(
                current["task"],
                info=f"round {info['round']} epoch {info['epoch']} loss {info['loss']:.3f} "
                f"acc {info['train_acc']:.3f} {info['images_per_s']:.0f} img/s",
            )
        elif event == "done":
            progress.update(cells, advance=1, info=f"last top-1 {info['top1']:.3f}")

    if not err_console.is_terminal:  # a log file or CI: plain lines instead of a live display
        def plain(event: str, index: int = 0, total: int = 0, **info) -> None:
            tag = f"[{index + 1}/{total}]"
            if event == "skip":
                err_console.print(f"{tag} {info['config']['method']} already done (resume)", highlight=False)
            elif event == "start":
                c = info["config"]
                err_console.print(f"{tag} {c['method']} sparsity={c['sparsity']:g} seed={c['seed']}: "
                                  f"{info['epochs']} epochs x {info['rounds']} round(s)", highlight=False)
            elif event == "epoch":
                err_console.print(f"{tag}   round {info['round']} epoch {info['epoch']} loss {info['loss']:.3f} "
                                  f"acc {info['train_acc']:.3f} {info['images_per_s']:.0f} img/s", highlight=False)
            elif event == "done":
                err_console.print(f"{tag}   done: top-1 {info['top1']:.4f}", highlight=False)

        yield plain
        return
    with progress:
        yield callback
