"""The ``sjlt`` command line: one Typer app, one module per command group.

Data goes to stdout (a rich table, or JSON with ``--json``); progress and logs go to
stderr through one rich Console. A user error ends in one red line and exit code 2.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from .app import app, err_console

__all__ = ["app", "main", "err_console"]


def main() -> None:
    from . import plugins_cmd  # noqa: F401  (registers commands)

    for mod in ("bench", "config_cmd", "energy", "results_cmd", "ticket"):
        try:
            __import__(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise
    from ..errors import UsageError

    try:
        app()
    except UsageError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
