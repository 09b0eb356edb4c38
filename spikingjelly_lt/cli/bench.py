"""``sjlt bench`` and ``sjlt train``: the LT vs BinW-SLT matrix, and one cell of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import plugins
from ..errors import UsageError
from ..methods import METHODS
from .app import app, err_console, setup_logging
from .common import dump_json, matrix_progress, parse_list, print_matrix

DEFAULT_RESULTS = "sjlt-results.db"


def _options_to_cells(*, arch, dataset, data_dir, methods, sparsity, epochs, timesteps, width,
                      seeds, batch_size, profile, limit_train, energy_model):
    from ..matrix import expand
    from ..profiles import get_profile
    from ..training.config import CellConfig

    prof = get_profile(profile)
    plugins.lookup("architectures", arch)
    ds = dataset or prof.dataset
    plugins.lookup("datasets", ds)
    if ds != "digits" and not data_dir:
        raise UsageError(f"dataset {ds!r} needs --data-dir (a folder holding the official python-format files)")
    if data_dir and not Path(data_dir).is_dir():
        raise UsageError(f"data dir {data_dir!r} does not exist")
    method_list = prof.methods if methods is None else (
        tuple(METHODS) if methods.strip() == "all" else parse_list(methods, "method list"))
    cell = {**prof.cell, "arch": arch, "dataset": ds}
    for key, value in (("epochs", epochs), ("timesteps", timesteps), ("width", width),
                       ("batch_size", batch_size), ("limit_train", limit_train), ("energy_model", energy_model)):
        if value is not None:
            cell[key] = value
    base = CellConfig.from_dict(cell)
    sparsities = parse_list(sparsity, "sparsity", float) if sparsity else list(prof.sparsities)
    seed_list = parse_list(seeds, "seed", int) if seeds else list(prof.seeds)
    return expand(base, method_list, sparsities, seed_list), prof


@app.command("bench")
def bench_command(
    arch: Annotated[str, typer.Option(help="Architecture (any registered: see `sjlt plugins`).")] = "resnet19",
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the profile's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with cifar-10-batches-py / cifar-100-python.")] = None,
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods, or 'all' (default: the profile's 7).")] = None,
    sparsity: Annotated[str | None, typer.Option(help="Comma-separated target sparsities (fraction removed).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per training run (per IMP round).")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Time steps T of spiking methods.")] = None,
    width: Annotated[float | None, typer.Option(help="Channel width multiplier.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    profile: Annotated[str, typer.Option(help="smoke (digits, minutes) | cpu (CIFAR-10 subset, ~2 h) | paper (GPU).")] = "smoke",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    results: Annotated[Path, typer.Option(help="SQLite results file (resumed if it exists).")] = Path(DEFAULT_RESULTS),
    limit_train: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    energy_model: Annotated[str | None, typer.Option(help="Energy cost model (see `sjlt plugins`).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Rerun cells already done.")] = False,
    shard: Annotated[str | None, typer.Option(help="Run only shard I/N of the cells (e.g. a Slurm array task).")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the markdown + PNG report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's).")] = None,
) -> None:
    """Run the LT vs BinW-SLT matrix and print who wins, at what energy and search cost."""
    setup_logging()
    import torch

    from ..matrix import parse_shard, shard as shard_cells
    from ..results.store import ResultStore
    from ..runner import resolve_device, run_matrix

    if threads:
        torch.set_num_threads(threads)
    cells, prof = _options_to_cells(
        arch=arch, dataset=dataset, data_dir=data_dir, methods=methods, sparsity=sparsity, epochs=epochs,
        timesteps=timesteps, width=width, seeds=seeds, batch_size=batch_size, profile=profile,
        limit_train=limit_train, energy_model=energy_model)
    if shard:
        i, n = parse_shard(shard)
        cells = shard_cells(cells, i, n)
    dev = resolve_device(device)
    store = ResultStore(results)
    err_console.print(f"[bold]{len(cells)} cells[/bold] ({prof.name} profile) on {dev} -> {results}")
    with matrix_progress(len(cells)) as progress:
        outcomes = run_matrix(cells, store, data_dir=data_dir, device=dev, checkpoint_dir=Path(f"{results}.ckpt"),
                              rerun=rerun, progress=progress, env_extra={"profile": prof.name})
    from ..training.distributed import is_main

    if not is_main():
        return
    hashes = {o.hash for o in outcomes}
    rows = [r for r in store.rows() if r["config_hash"] in hashes]
    if report:
        from ..results.report import build_report

        err_console.print(f"report: {build_report(rows, report)}")
    if as_json:
        typer.echo(dump_json([{"config_hash": o.hash, "status": o.status, "config": o.config.to_dict(),
                               "metrics": o.metrics, "reason": o.reason} for o in outcomes]))
    else:
        print_matrix(rows, title=f"{arch} on {cells[0].dataset if cells else '?'} ({prof.name})")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} cell(s) failed[/red]; see the status column")
        sys.exit(1)


@app.command("train")
def train_command(
    arch: Annotated[str, typer.Option(help="Architecture.")] = "resnet19",
    method: Annotated[str, typer.Option(help="Method preset (e.g. binw-slt) or NEURON/WEIGHTS/PRUNER.")] = "binw-slt",
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the profile's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data folder for CIFAR.")] = None,
    sparsity: Annotated[float, typer.Option(help="Target sparsity (fraction removed).")] = 0.5,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Time steps T.")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier.")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    profile: Annotated[str, typer.Option(help="Recipe defaults: smoke | cpu | paper.")] = "smoke",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    results: Annotated[Path, typer.Option(help="SQLite results file.")] = Path(DEFAULT_RESULTS),
    rerun: Annotated[bool, typer.Option("--rerun", help="Rerun if already done.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Train and measure one cell (the same code path as a cell of `sjlt bench`)."""
    bench_command(arch=arch, dataset=dataset, data_dir=data_dir, methods=method, sparsity=str(sparsity),
                  epochs=epochs, timesteps=timesteps, width=width, seeds=str(seed), batch_size=batch_size,
                  profile=profile, device=device, results=results, limit_train=None, energy_model=None,
                  rerun=rerun, shard=None, report=None, as_json=as_json, threads=None)
