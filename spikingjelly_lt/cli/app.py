"""The Typer app and the one stderr Console shared by every command."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["app", "err_console", "out_console", "setup_logging"]

app = typer.Typer(
    name="sjlt",
    help="Lottery tickets in spiking networks: BinW-SLT vs LT benchmark matrix, energy, plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _version_line() -> str:
    """``sjlt X (spikingjelly-lt; torch Y, spikingjelly Z, python P)`` without importing torch."""
    import platform

    from .. import __version__
    from .._versions import dist_version

    def v(dist: str) -> str:
        return dist_version(dist, "not installed")

    return (f"sjlt {__version__} (spikingjelly-lt; torch {v('torch')}, spikingjelly {v('spikingjelly')}, "
            f"python {platform.python_version()})")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_version_line())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version (and torch's, spikingjelly's) and exit.")] = False,
    plugin: Annotated[list[str] | None, typer.Option(
        "--plugin", help="Register a plugin module (pkg.module or path/to/file.py) for this run; repeatable "
                         "(also SJLT_PLUGINS=a,b). Entry points stay the way to ship one.")] = None,
) -> None:
    """Lottery tickets in spiking networks: BinW-SLT vs LT benchmark matrix, energy, plugins."""
    if plugin:
        from .. import plugins

        plugins.add_plugins(plugin, origin="--plugin")

out_console = Console()
if not out_console.is_terminal:  # a file or pipe: never squeeze the table
    out_console = Console(width=200)


class _ConsoleHandler(logging.Handler):
    """One log record, one stderr line (never wrapped), through the shared Console."""

    STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red", "DEBUG": "dim"}

    def emit(self, record: logging.LogRecord) -> None:
        style = self.STYLES.get(record.levelname)
        msg = escape(record.getMessage())
        prefix = f"[{style}]{record.levelname.lower()}:[/{style}] " if style else ""
        err_console.print(prefix + msg, soft_wrap=True, highlight=False)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; under torchrun only rank 0 speaks (other ranks: errors only)."""
    import os

    logger = logging.getLogger("spikingjelly_lt")
    if int(os.environ.get("RANK", "0")) != 0:
        logger.setLevel(logging.ERROR)
        err_console.quiet = True
        out_console.quiet = True
        return
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # CPU builds: noise
