"""``sjlt config show``, ``sjlt methods``, ``sjlt profiles``: what a cell is made of."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .console import dump_json, out_console, setup_logging
from .request import ConfigOption, SetOption, resolve_request

__all__ = ["config_app"]

config_app = typer.Typer(help="Show the fully resolved cell of a request.", no_args_is_help=True)


@config_app.command("show")
def show_command(
    profile: Annotated[str, typer.Option(help="Profile whose recipe starts the cell (`sjlt profiles`).")] = "smoke",
    method: Annotated[str | None, typer.Option(help="Method (`sjlt methods`); default: the profile's first.")] = None,
    sets: SetOption = None,
    config: ConfigOption = None,
    data_dir: Annotated[str | None, typer.Option(help="Data folder (only checked to exist).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Print every field of the resolved cell, what its method uses, and its hash."""
    setup_logging()
    from ..methods import resolve
    from ..profiles import get_profile

    cell, prof = resolve_request(profile=profile, config=config, sets=sets, data_dir=data_dir, check_data=False,
                                 options={"method": method or get_profile(profile).methods[0]})
    r = resolve(cell)
    if as_json:
        typer.echo(dump_json(r.describe()))
        return
    print_cell(r, title=f"{r.method.name} ({prof.name} profile) - cell {r.hash}")


def print_cell(r, title: str) -> None:
    """The resolved cell as a table: key, value, whether it counts for this method, help."""
    from ..cell import knobs

    table = Table(title=title)
    for col in ("key", "value", "counts", "help"):
        table.add_column(col, overflow="fold")
    for key, k in knobs().items():
        value = r.cell.get(key)
        counts = (not k.conditional) or key in r.uses
        table.add_row(key, repr(value) if isinstance(value, str) else str(value),
                      "yes" if counts else "[dim]unused[/dim]", k.help)
    out_console.print(table)
    m = r.method
    out_console.print(f"method {m.name}: neuron {m.neuron}, weights {m.weights}, pruner {m.pruner} "
                      f"({r.plugins['pruner']['distribution']} {r.plugins['pruner']['version']}); "
                      f"baselines: " + ", ".join(f"{k} {v}" for k, v in r.baseline_hashes().items()), highlight=False)


def methods_command(as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False) -> None:
    """List the method presets: neuron x weight kind x pruner, and the paper name."""
    setup_logging()
    from ..methods import DEFAULT_METHODS, METHODS

    rows = [{**m.to_dict(), "default": m.name in DEFAULT_METHODS} for m in METHODS.values()]
    if as_json:
        typer.echo(dump_json(rows))
        return
    table = Table(title="method presets (also NEURON/WEIGHTS/PRUNER for any registered combination)")
    for col in ("method", "neuron", "weights", "pruner", "in papers", "default matrix"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["neuron"], r["weights"], r["pruner"], r["paper_name"], "yes" if r["default"] else "")
    out_console.print(table)


def profiles_command(as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False) -> None:
    """List the profiles: data set, methods, sparsities, seeds and every field each sets."""
    setup_logging()
    from ..profiles import PROFILES

    rows = [p.to_dict() for p in PROFILES.values()]
    if as_json:
        typer.echo(dump_json(rows))
        return
    table = Table(title="profiles (sjlt bench --profile NAME)")
    for col in ("profile", "data", "methods x sparsities x seeds", "sets", "why"):
        table.add_column(col, overflow="fold")
    for p in rows:
        seeds = str(p["seeds"]) + "".join(f", {m}: {v}" for m, v in p["method_seeds"].items())
        table.add_row(p["name"], p["dataset"], f"{len(p['methods'])} x {p['sparsities']} x seeds {seeds}",
                      ", ".join(f"{k}={v}" for k, v in p["sets"].items()), p["description"])
    out_console.print(table)
