"""``sjlt results export|merge|show`` and ``sjlt report``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError, check_choice
from .app import app, err_console, setup_logging
from .common import dump_json, print_matrix

results_app = typer.Typer(help="Inspect, export and merge results files.", no_args_is_help=True)
app.add_typer(results_app, name="results")


def _open(path: Path):
    from ..results.store import ResultStore

    if not path.is_file():
        raise UsageError(f"results file {path} does not exist")
    return ResultStore(path, create=False)


@results_app.command("export")
def export_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output file (default stdout).")] = None,
) -> None:
    """Write every row (config, metrics, status, env) as JSON lines or CSV."""
    check_choice("format", fmt, ("jsonl", "csv"))
    store = _open(results)
    if out:
        with open(out, "w", newline="") as fh:
            store.export(fmt, fh)
    else:
        store.export(fmt, sys.stdout)


@results_app.command("merge")
def merge_command(
    sources: Annotated[list[Path], typer.Argument(help="Results files to merge (e.g. one per shard).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Merged results file (created or updated).")],
) -> None:
    """Merge shard results; the same cell twice keeps the newest done row."""
    from ..results.store import merge

    for s in sources:
        if not s.is_file():
            raise UsageError(f"results file {s} does not exist")
    stats = merge(sources, out)
    err_console.print(f"merged {len(sources)} file(s) into {out}: {stats}")


@results_app.command("show")
def show_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Print the matrix table of a results file."""
    rows = _open(results).rows()
    if as_json:
        from ..results.report import matrix_table

        typer.echo(dump_json(matrix_table(rows)))
    else:
        print_matrix(rows, title=str(results))


@app.command("report")
def report_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file (or a merged one).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and the PNG plots.")] = Path("sjlt-report"),
) -> None:
    """Write the matrix table, accuracy/energy/time-to-ticket plots and a markdown summary."""
    setup_logging()
    from ..results.report import build_report

    rows = _open(results).rows()
    path = build_report(rows, out)
    print_matrix(rows, title=str(results))
    err_console.print(f"report written to {path}")
