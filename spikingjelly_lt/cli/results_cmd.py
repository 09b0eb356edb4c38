"""``sjlt results export|merge|show|verify`` and ``sjlt report``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError, check_choice
from .console import dump_json, err_console, setup_logging
from .paths import atomic_text_writer, check_input_file, check_output_dir, check_output_file
from .tables import print_matrix

results_app = typer.Typer(help="Inspect, export and merge results files.", no_args_is_help=True)


def _open(path: Path):
    """Open an existing results file read-only (reports and exports never write it)."""
    from ..results.store import ResultStore

    check_input_file(path, "results file")
    return ResultStore(path, readonly=True)


@results_app.command("export")
def export_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | json | csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output file (default stdout).")] = None,
    history: Annotated[bool, typer.Option("--history", help="One record per trained epoch (loss, train / val "
                                                            "accuracy, firing rate, lr) instead of one per row.")] = False,
) -> None:
    """Write every row (config, metrics, status, env) as JSON lines, JSON or CSV; or, with
    --history, every row's per-epoch learning curve."""
    from ..results.store import EXPORT_FORMATS

    check_choice("format", fmt, EXPORT_FORMATS)
    store = _open(results)
    if out:
        check_output_file(out, "export file", protect=(results,))
        with atomic_text_writer(out) as fh:
            store.export(fmt, fh, history=history)
        what = "the epochs of " if history else ""
        err_console.print(f"exported {what}{store.count()} row(s) of {results} to {out} ({fmt})", highlight=False)
    else:
        store.export(fmt, sys.stdout, history=history)


@results_app.command("merge")
def merge_command(
    sources: Annotated[list[Path], typer.Argument(help="Results files to merge (e.g. one per shard).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Merged results file (created or updated).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Merge shard results; the same cell twice keeps the newest done row."""
    from ..results.store import ResultStore, merge

    setup_logging()
    for s in sources:
        check_input_file(s, "results file")
        ResultStore(s, readonly=True).close()  # every source readable before the destination is touched
    check_output_file(out, "merged results file")
    same = [s for s in sources if out.exists() and s.samefile(out)]
    stats = merge(sources, out)
    with ResultStore(out, readonly=True) as dest:
        total = dest.count()
    if as_json:
        typer.echo(dump_json({"sources": [str(s) for s in sources], "out": str(out), "added": stats.added,
                              "replaced": stats.replaced, "kept": stats.kept, "skipped_sources": [str(s) for s in same],
                              "rows": total}))
        return
    sentence = (f"merged {len(sources) - len(same)} file(s) into {out}: {stats.added} row(s) added, "
                f"{stats.replaced} replaced by a better one, {stats.kept} kept as they were; {out} now has {total} row(s)")
    if same:
        sentence += f" ({', '.join(map(str, same))} is the destination itself, so it was skipped)"
    typer.echo(sentence)


@results_app.command("show")
def show_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    cell_hash: Annotated[str | None, typer.Argument(metavar="[HASH]", help="A row's hash (or a unique prefix): print its resolved cell.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Print the matrix table of a results file, or one row's fully resolved cell."""
    rows = _open(results).rows()
    if cell_hash is not None:
        found = [r for r in rows if r["config_hash"].startswith(cell_hash.strip())]
        if len(found) != 1:
            raise UsageError(f"hash {cell_hash!r} matches {len(found)} rows of {results}; valid: "
                             + ", ".join(r["config_hash"] for r in rows[:20]) + (" ..." if len(rows) > 20 else ""))
        _show_row(found[0], as_json)
        return
    if as_json:
        from ..results.table import matrix_table

        typer.echo(dump_json(matrix_table(rows)))
    else:
        print_matrix(rows, title=str(results))
        _print_rows(rows)


def _print_rows(rows: list[dict]) -> None:
    from rich.table import Table

    from ..cell import flatten
    from .console import out_console

    table = Table(title="rows (sjlt results show FILE HASH prints one row's resolved cell)")
    for col in ("hash", "status", "method", "sparsity", "seed", "top-1 %"):
        table.add_column(col, justify="right" if col in ("sparsity", "seed", "top-1 %") else "left")
    for r in rows:
        c, top1 = flatten(r["config"]), (r.get("metrics") or {}).get("top1")
        table.add_row(r["config_hash"], r["status"], str(c.get("method")), str(c.get("sparsity", "–")),
                      str(c.get("seed")), "–" if top1 is None else f"{100 * top1:.2f}")
    out_console.print(table)


def _show_row(row: dict, as_json: bool) -> None:
    from rich.table import Table

    from ..cell import flatten
    from .console import out_console

    described = row.get("cell") or {}
    if as_json:
        typer.echo(dump_json({k: row[k] for k in ("config_hash", "status", "reason", "config", "cell", "env")}
                             | {"metrics": {k: v for k, v in (row.get("metrics") or {}).items() if k != "history"}}))
        return
    table = Table(title=f"cell {row['config_hash']} ({row['status']})")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_column("counts")
    key = flatten(row["config"])
    full = described.get("cell")
    if full:
        for section, value in full.items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for name, v in items:
                dotted = f"{section}.{name}" if name else section
                table.add_row(dotted, repr(v) if isinstance(v, str) else str(v),
                              "yes" if (name or section) in key else "[dim]unused[/dim]")
    else:  # a schema-1 row: its stored (normalized) config
        for k, v in key.items():
            table.add_row(k, str(v), "yes")
    out_console.print(table)
    config = row.get("config") or {}
    source = (config.get("model") or {}).get("source")
    if source:  # a model by reference: what was run, and the sha256 of the file defining it
        out_console.print(f"model: {source.get('reference')} (sha256 {source.get('sha256')})", highlight=False,
                          soft_wrap=True)
    fingerprint = (config.get("data") or {}).get("fingerprint") or (row.get("metrics") or {}).get("data_fingerprint")
    if fingerprint:
        out_console.print(f"data: {flatten(config).get('dataset')} ({fingerprint})", highlight=False, soft_wrap=True)
    for label, value in (("method", described.get("method")), ("plugins", described.get("plugins")),
                         ("pruner", (row.get("metrics") or {}).get("pruner")),
                         ("baselines", described.get("baselines"))):
        if value:
            out_console.print(f"{label}: {value}", highlight=False, soft_wrap=True)


@results_app.command("verify")
def verify_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Check a results file: SQLite's integrity check and every row's checksum.

    Exit 0 when all is sound, 1 when rows (or pages) are damaged (their hashes are listed),
    2 when FILE is missing or not a results file.
    """
    with _open(results) as store:
        found = store.verify()
    sound = found["integrity"] == ["ok"] and not found["damaged"]
    if as_json:
        typer.echo(dump_json(found | {"sound": sound}))
    else:
        integrity = "ok" if found["integrity"] == ["ok"] else "; ".join(found["integrity"][:5])
        line = (f"{results}: schema {found['schema_version']}, integrity {integrity}; {found['rows']} row(s): "
                f"{found['ok']} ok, {len(found['damaged'])} damaged")
        if found["unchecked"]:
            line += f" ({found['unchecked']} ok row(s) from an older version carry no checksum)"
        typer.echo(line)
        for d in found["damaged"]:
            typer.echo(f"damaged row {d['config_hash']}: {d['problem']}")
        if not sound:
            typer.echo("rerun damaged cells with `sjlt bench ... --rerun`, or restore the file from a copy")
    if not sound:
        raise typer.Exit(1)


def report_command(
    results: Annotated[Path, typer.Argument(help="SQLite results file (or a merged one).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and the PNG plots.")] = Path("sjlt-report"),
) -> None:
    """Write the matrix table, accuracy/energy/time-to-ticket plots and a markdown summary."""
    setup_logging()
    from ..results.report import build_report

    rows = _open(results).rows()
    check_output_dir(out, "report folder")
    path = build_report(rows, out)
    print_matrix(rows, title=str(results))
    print_claims(rows)
    err_console.print(f"report written to {path}")


def print_claims(rows: list[dict]) -> None:
    """The claims table (claim, our paired difference with its 95 % CI, verdict) on stdout."""
    from rich.table import Table

    from ..results.report import claims_markdown
    from .console import out_console

    headers, cells = claims_markdown(rows)
    table = Table(title="claims (paired over seeds; verdicts as in docs/protocol.md)")
    for h in headers:
        table.add_column(h, justify="right" if h in ("n",) else "left", overflow="fold")
    for row in cells:
        table.add_row(*row)
    out_console.print(table)
