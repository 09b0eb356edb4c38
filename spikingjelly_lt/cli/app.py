"""The ``sjlt`` Typer app, assembled in one place: the root options, then every command and
command group of the ``*_cmd`` modules, registered here (the modules define plain functions
and sub-apps and attach nothing themselves)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import bench_cmd, config_cmd, energy_cmd, plugins_cmd, results_cmd, ticket_cmd, tune_cmd
from .console import err_console, out_console, setup_logging

__all__ = ["app", "err_console", "out_console", "setup_logging"]

app = typer.Typer(
    name="sjlt",
    help="Lottery tickets in spiking networks: BinW-SLT vs LT benchmark matrix, energy, plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# commands, in the order `sjlt --help` lists them (command groups follow them)
app.command("plugins")(plugins_cmd.plugins_command)
app.command("doctor")(plugins_cmd.doctor_command)
app.command("bench")(bench_cmd.bench_command)
app.command("train")(bench_cmd.train_command)
app.command("methods")(config_cmd.methods_command)
app.command("profiles")(config_cmd.profiles_command)
app.command("energy")(energy_cmd.energy_command)
app.command("report")(results_cmd.report_command)
app.command("tune")(tune_cmd.tune_command)
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(results_cmd.results_app, name="results")
app.add_typer(ticket_cmd.ticket_app, name="ticket")
