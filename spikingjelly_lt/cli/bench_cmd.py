"""``sjlt bench`` and ``sjlt train``: the LT vs BinW-SLT matrix, and one cell of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..profiles import PROFILES
from .console import dump_json, err_console, setup_logging
from .paths import check_output_dir
from .progress import matrix_progress
from .request import ConfigOption, SetOption, grid_fields_requested, options_to_cells
from .tables import print_matrix

DEFAULT_RESULTS = "sjlt-results.db"
PROFILE_HELP = " | ".join(PROFILES) + " (`sjlt profiles` says what each runs)."


def bench_command(
    arch: Annotated[str | None, typer.Option(help="Architecture: registered (`sjlt plugins`), FILE.py:CALLABLE or "
                                                  "MODULE:CALLABLE (your own model; docs/own-model.md).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the profile's): registered, tensors:PATH, "
                                                     "imagefolder:DIR, frames:PATH or MODULE:CALLABLE.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with cifar-10-batches-py / cifar-100-python.")] = None,
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods, or 'all' (default: the profile's 7).")] = None,
    sparsity: Annotated[str | None, typer.Option(help="Comma-separated target sparsities (fraction removed), e.g. "
                                                      "0.5,0.8,0.9,0.95; with --seeds a grid.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per training run (per IMP round).")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Time steps T of spiking methods.")] = None,
    width: Annotated[str | None, typer.Option(help="Comma-separated channel width multipliers, e.g. "
                                                   "0.0625,0.125,0.25: a grid axis like --sparsity (default: "
                                                   "the profile's).")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds for every method, e.g. 0,1,2 "
                                                   "(default: the profile's, per method).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    profile: Annotated[str, typer.Option(help="Profile: " + PROFILE_HELP)] = "smoke",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    results: Annotated[Path, typer.Option(help="SQLite results file (resumed if it exists).")] = Path(DEFAULT_RESULTS),
    limit_train: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    energy_model: Annotated[str | None, typer.Option(help="Energy cost model (see `sjlt plugins`).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Rerun cells already done.")] = False,
    shard: Annotated[str | None, typer.Option(help="Run only shard I/N of the cells (e.g. a Slurm array task).")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the markdown + PNG report of the whole results file here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's).")] = None,
    sets: SetOption = None,
    config: ConfigOption = None,
    log_dir: Annotated[Path | None, typer.Option(help="Write TensorBoard scalars here, one run per cell (needs the \\[tensorboard] extra).")] = None,
) -> None:
    """Run the LT vs BinW-SLT matrix and print who wins, at what energy and search cost.

    Recipe: the profile, then --config FILE.toml, then each --set KEY=VALUE, then the
    explicit options (--epochs, --width, ...). `sjlt config show` prints the result.
    """
    run_bench(**locals())


def run_bench(*, arch, dataset, data_dir, methods, sparsity, epochs, timesteps, width, seeds, batch_size, profile,
              device, results, limit_train, energy_model, rerun, shard, report, as_json, threads, sets, config,
              log_dir, option_names: dict | None = None) -> None:
    """What `sjlt bench` (and `sjlt train`, with its own ``option_names``) runs: the request's cells,
    checked before any work, run against the results file, then the table (or JSON) and the report."""
    setup_logging()
    import torch

    from ..matrix import parse_shard, shard as shard_cells
    from ..results.store import ResultStore
    from ..runner import resolve_device, run_matrix
    from ..training.distributed import is_main

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    shard_of = parse_shard(shard) if shard else None
    cells, prof = options_to_cells(
        methods=methods, sparsity=sparsity, seeds=seeds, width=width, profile=profile, config=config, sets=sets,
        data_dir=data_dir, option_names=option_names, options={
            "model.arch": arch, "data.dataset": dataset, "recipe.epochs": epochs, "model.timesteps": timesteps,
            "recipe.batch_size": batch_size, "data.limit_train": limit_train,
            "energy_model": energy_model})
    if shard_of:
        cells = shard_cells(cells, *shard_of)
    tensorboard = _check_before_work(cells, dev, results=results, report=report, log_dir=log_dir)
    store = ResultStore(results) if is_main() else None  # under torchrun rank 0 alone opens the file
    check_output_dir(Path(f"{results}.ckpt"), "checkpoint folder")
    err_console.print(f"[bold]{len(cells)} cells[/bold] ({prof.name} profile) on {dev} -> {results}")
    with matrix_progress(len(cells), tensorboard=tensorboard) as progress:
        outcomes = run_matrix(cells, store, data_dir=data_dir, device=dev, checkpoint_dir=Path(f"{results}.ckpt"),
                              rerun=rerun, progress=progress, env_extra={"profile": prof.name})
    if store is None:
        return
    _print_outcomes(outcomes, store, cells, prof.name, report=report, as_json=as_json)
    store.close()  # now, not whenever a garbage collection frees the connection (and checkpoints the -wal)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} cell(s) failed[/red]; see the status column")
        sys.exit(1)


def _check_before_work(cells, dev, *, results: Path, report: Path | None, log_dir: Path | None):
    """Exit 2 before any work on what cannot run or be written (precision on this device, the
    TensorBoard extra, the results file, the report folder); returns the TensorBoard log or None."""
    from ..hardware import keep_freed_memory
    from ..training.precision import precision_for
    from .paths import check_output_file
    from .tensorboard_log import TensorBoardLog

    for recipe in {resolved.cell.recipe for resolved in cells}:  # bf16 on a CPU without it
        precision_for(recipe.precision, dev, recipe.memory_format)
    keep_freed_memory()  # large tensors reuse the heap instead of faulting in fresh pages every step
    tensorboard = TensorBoardLog(log_dir) if log_dir else None  # a missing extra is said before any work
    if not results.exists():
        check_output_file(results, "results file")
    if report:
        check_output_dir(report, "report folder")
    return tensorboard


def _print_outcomes(outcomes, store, cells, profile: str, *, report: Path | None, as_json: bool) -> None:
    """The report of the whole results file (``--report``), then this run's cells: JSON, or the matrix table."""
    hashes = {o.hash for o in outcomes}
    stored = store.rows()
    rows = [r for r in stored if r["config_hash"] in hashes]
    if report:
        from ..results.report import build_report

        # the whole results file, as `sjlt report RESULTS` would: a --methods subset run into a
        # shared file must not leave a report of that subset only
        err_console.print(f"report: {build_report(stored, report)}")
    if as_json:
        from ..results.table import matrix_table
        from ..results.stats import claims_table, paired_table

        typer.echo(dump_json({
            "cells": [{"config_hash": o.hash, "status": o.status, "config": o.resolved.cell.to_dict(),
                       "cell": o.resolved.describe(), "metrics": o.metrics, "reason": o.reason} for o in outcomes],
            "summary": [{k: v for k, v in e.items() if k != "config"} for e in matrix_table(rows)],
            "paired": paired_table(rows),
            "claims": [c for c in claims_table(rows) if c["verdict"] != "not run"],
        }))
    else:
        first = cells[0].cell if cells else None
        print_matrix(rows, title=f"{first.model.arch if first else '?'} on {first.data.dataset if first else '?'} ({profile})")


def train_command(
    arch: Annotated[str | None, typer.Option(help="Architecture: registered, FILE.py:CALLABLE or MODULE:CALLABLE.")] = None,
    method: Annotated[str | None, typer.Option(help="Method preset (e.g. binw-slt) or NEURON/WEIGHTS/PRUNER "
                                                    "(default: binw-slt).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the profile's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data folder for CIFAR.")] = None,
    sparsity: Annotated[float | None, typer.Option(help="Target sparsity (fraction removed; default: the profile's).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    timesteps: Annotated[int | None, typer.Option(help="Time steps T.")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the profile's first).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    profile: Annotated[str, typer.Option(help="Recipe defaults: " + PROFILE_HELP)] = "smoke",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    results: Annotated[Path, typer.Option(help="SQLite results file.")] = Path(DEFAULT_RESULTS),
    rerun: Annotated[bool, typer.Option("--rerun", help="Rerun if already done.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
    sets: SetOption = None,
    config: ConfigOption = None,
    log_dir: Annotated[Path | None, typer.Option(help="Write TensorBoard scalars here (needs the \\[tensorboard] extra).")] = None,
) -> None:
    """Train and measure one cell (the same code path as a cell of `sjlt bench`)."""
    if method is None and "method" not in grid_fields_requested(config, sets):
        method = "binw-slt"
    run_bench(option_names={"method": "--method", "sparsity": "--sparsity", "seed": "--seed", "model.width": "--width"}, arch=arch, dataset=dataset, data_dir=data_dir, methods=method,
                  sparsity=None if sparsity is None else str(sparsity),
                  epochs=epochs, timesteps=timesteps, width=width, seeds=None if seed is None else str(seed),
                  batch_size=batch_size, profile=profile, device=device, results=results, limit_train=None,
                  energy_model=None, rerun=rerun, shard=None, report=None, as_json=as_json, threads=None,
                  sets=sets, config=config, log_dir=log_dir)
