"""``sjlt tune``: measure this machine's fastest execution path for a cell shape, and cache it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .console import dump_json, err_console, out_console, setup_logging
from .request import ConfigOption, SetOption, resolve_request


def tune_command(
    method: Annotated[str, typer.Option(help="Method preset (`sjlt methods`).")] = "snn",
    arch: Annotated[str | None, typer.Option(help="Architecture (default: the profile's).")] = None,
    width: Annotated[float | None, typer.Option(help="Channel width multiplier.")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Time steps T.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    input_size: Annotated[int, typer.Option(help="Image side in pixels (CIFAR: 32).")] = 32,
    in_channels: Annotated[int, typer.Option(help="Image channels.")] = 3,
    num_classes: Annotated[int, typer.Option(help="Classes.")] = 10,
    profile: Annotated[str, typer.Option(help="Profile whose recipe starts the cell (`sjlt profiles`).")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's).")] = None,
    sets: SetOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Time each candidate execution path (memory format, LIF kernel, denormals) of a cell's
    train step on this CPU, print the table and the choice, and cache it for `auto` cells."""
    setup_logging()
    import torch

    from ..build import DataShape, build_model
    from ..hardware import cpu_info, keep_freed_memory
    from ..methods import resolve
    from ..training.execpath import _axes, measure

    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()
    cell, _ = resolve_request(profile=profile, config=config, sets=sets, check_data=False, options={
        "method": method, "model.arch": arch, "model.width": width, "model.timesteps": timesteps,
        "recipe.batch_size": batch_size})
    r = resolve(cell)
    model = build_model(r, DataShape(num_classes, in_channels, input_size))
    device = torch.device("cpu")
    shape = (cell.recipe.batch_size, in_channels, input_size, input_size)
    from ..training.trainer import warm_native_kernels

    warm_native_kernels(model, device)
    err_console.print(f"timing the candidate paths of {method} ({cell.model.arch} w{cell.model.width:g}, "
                      f"batch {shape[0]}, T={cell.model.timesteps}) ...", highlight=False)
    axes = _axes(r, model, device)
    path = measure(r, model, shape, device)
    info = cpu_info()
    if as_json:
        typer.echo(dump_json({"cpu": info.to_dict(), "method": method, "shape": list(shape), "axes": axes,
                              **path.to_dict()}))
        return
    table = Table(title=f"{info.model} ({', '.join(info.flags)}), {torch.get_num_threads()} threads")
    for col in ("path", "train step ms", "vs default"):
        table.add_column(col, justify="right" if col != "path" else "left")
    base = next(iter(path.step_ms.values()), None)
    for name, ms in path.step_ms.items():
        mark = " <- chosen" if name == path.label() else ""
        table.add_row(name + mark, f"{ms:.1f}", f"{base / ms:.3f}x" if base and ms else "")
    out_console.print(table)
    extra = f"; bf16 runs at {path.bf16_vs_fp32:.2f}x fp32 here" if path.bf16_vs_fp32 else ""
    out_console.print(f"chosen: {path.label()} (measured in {path.tune_seconds:.1f} s, cached){extra}", highlight=False)
