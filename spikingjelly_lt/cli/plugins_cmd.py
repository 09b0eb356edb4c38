"""``sjlt plugins``: what is registered, and from which distribution."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .. import plugins
from .app import app, out_console, setup_logging


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List plugins (name, distribution, version, hooks) and every registered name."""
    setup_logging()
    info = plugins.plugin_info()
    registered = {
        kind: {name: e.plugin for name, e in sorted(plugins.registry(kind).items())} for kind in plugins.KINDS
    }
    if as_json:
        typer.echo(json.dumps({"plugins": info, "registered": registered}, indent=2))
        return
    table = Table(title="plugins")
    table.add_column("plugin", no_wrap=True)
    for col in ("distribution", "version", "hooks"):
        table.add_column(col)
    for row in info:
        table.add_row(row["name"], row["distribution"], row["version"], ", ".join(row["hooks"]))
    out_console.print(table)
    names = Table(title="registered names")
    names.add_column("kind")
    names.add_column("names (plugin)")
    for kind, entries in registered.items():
        names.add_row(kind, ", ".join(f"{n} [dim]({p.rsplit('.', 1)[-1]})[/dim]" for n, p in entries.items()))
    out_console.print(names)
