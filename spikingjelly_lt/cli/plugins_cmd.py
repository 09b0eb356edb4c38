"""``sjlt plugins``: what is registered, and from which distribution."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .. import plugins
from .console import out_console, setup_logging


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


def doctor_command(
    build: Annotated[bool, typer.Option("--build", help="Build the native kernels now (once per machine).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What this machine runs: CPU and its fast-path flags, CUDA, and each native kernel (built, failed: why)."""
    setup_logging()
    import torch

    from .._native import KERNELS, kernel_status, load_kernel
    from ..hardware import bf16_supported, cpu_info

    if build:
        for name, src in KERNELS.items():
            load_kernel(name, str(src))
    report = {"cpu": cpu_info().to_dict(), "bf16_native_cpu": bf16_supported("cpu"), "torch": torch.__version__,
              "cuda": torch.cuda.is_available(), "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
              "kernels": kernel_status()}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    out_console.print(f"CPU: {report['cpu']['model']} ({', '.join(report['cpu']['flags']) or 'no reported flags'}); "
                      f"native bf16: {'yes' if report['bf16_native_cpu'] else 'no'}; torch {report['torch']}; "
                      + (f"CUDA: {report['gpus']} GPU(s)" if report["cuda"] else "CUDA: not available"), highlight=False)
    table = Table(title="native kernels")
    for col in ("kernel", "state", "why / where"):
        table.add_column(col, overflow="fold")
    for name, k in report["kernels"].items():
        table.add_row(name, k["state"], k["reason"] or k["build_dir"] or "")
    out_console.print(table)
