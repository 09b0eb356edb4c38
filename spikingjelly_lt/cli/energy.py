"""``sjlt energy``: per-layer MAC/AC counts and energy, with savings vs dense ANN and SNN."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app, err_console, out_console, setup_logging
from .common import dump_json

log = logging.getLogger("spikingjelly_lt")


@app.command("energy")
def energy_command(
    checkpoint: Annotated[Path | None, typer.Option(help="A trainer checkpoint (RESULTS.db.ckpt/HASH.pt); omit for an untrained model.")] = None,
    arch: Annotated[str, typer.Option(help="Architecture (without a checkpoint).")] = "resnet19",
    method: Annotated[str, typer.Option(help="Method (without a checkpoint).")] = "binw-slt",
    dataset: Annotated[str, typer.Option(help="Data set (without a checkpoint).")] = "digits",
    data_dir: Annotated[str | None, typer.Option(help="Data folder for CIFAR.")] = None,
    width: Annotated[float, typer.Option(help="Width multiplier (without a checkpoint).")] = 0.25,
    timesteps: Annotated[int, typer.Option(help="T (without a checkpoint).")] = 4,
    sparsity: Annotated[float, typer.Option(help="Sparsity (without a checkpoint).")] = 0.5,
    model: Annotated[str, typer.Option("--model", help="Energy cost model (see `sjlt plugins`).")] = "horowitz45",
    snn_checkpoint: Annotated[Path | None, typer.Option(help="A trained dense SNN checkpoint for the x SNN ratio.")] = None,
    images: Annotated[int, typer.Option(help="Test images to count over.")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Count per-layer MACs/ACs from measured firing rates and price them."""
    setup_logging()
    from .. import plugins
    from ..data import load_dataset, make_loader
    from ..energy.counter import count_energy, energy_ratio
    from ..training.config import CellConfig
    from ..training.trainer import build_cell_model, load_trained

    cost = plugins.lookup("energy_models", model)
    if checkpoint is not None:
        cfg, bundle, net = load_trained(checkpoint, data_dir)
        source = str(checkpoint)
    else:
        from ..profiles import get_profile

        cfg = CellConfig.from_dict({**get_profile("smoke").cell, "arch": arch, "method": method, "dataset": dataset,
                                    "width": width, "timesteps": timesteps, "sparsity": sparsity,
                                    "limit_test": images}).validate().normalized()
        bundle = load_dataset(cfg.dataset, data_dir, limit_test=images)
        net = build_cell_model(cfg, bundle)
        source = "untrained (random init)"
        err_console.print("[yellow]no checkpoint: firing rates of an untrained network[/yellow]")
    loader = make_loader(bundle, "test", 128)
    max_batches = max(1, -(-images // 128))
    report = count_energy(net, loader, cost, max_batches=max_batches)
    ann = count_energy(build_cell_model(replace(cfg, method="ann").normalized(), bundle), loader, cost, max_batches=1)
    if snn_checkpoint is None and checkpoint is not None:
        snn_checkpoint = _dense_snn_beside(checkpoint, cfg)
    if snn_checkpoint is not None:
        _, _, snn_net = load_trained(snn_checkpoint, data_dir)
        snn_source = str(snn_checkpoint)
    else:
        snn_net = build_cell_model(replace(cfg, method="snn").normalized(), bundle)
        snn_source = "untrained dense SNN (pass --snn-checkpoint for a trained one)"
    snn = count_energy(snn_net, loader, cost, max_batches=max_batches)
    x_ann, x_snn = energy_ratio(ann, report, cost), energy_ratio(snn, report, cost)
    if as_json:
        typer.echo(dump_json({"config": cfg.to_dict(), "source": source, "report": report.to_dict(),
                              "x_ann": x_ann, "x_snn": x_snn, "snn_reference": snn_source}))
        return
    table = Table(title=f"{cfg.arch} {cfg.method} — energy under {report.model} ({source})")
    for col, right in (("layer", False), ("op", False), ("input", False), ("MACs", True), ("ACs", True),
                       ("density", True), ("in rate", True), ("bits", True), ("pJ", True)):
        table.add_column(col, justify="right" if right else "left")
    for layer in report.layers:
        table.add_row(layer.name, layer.op_kind, layer.input_kind, f"{layer.macs:.4g}", f"{layer.acs:.4g}",
                      f"{layer.weight_density:.3f}", "–" if layer.firing_rate is None else f"{layer.firing_rate:.3f}",
                      str(layer.weight_bits), f"{layer.energy_pj:.4g}")
    table.add_section()
    table.add_row("total / image", "", "", f"{report.macs:.4g}", f"{report.acs:.4g}", "", 
                  "–" if report.mean_firing_rate is None else f"{report.mean_firing_rate:.3f}", "", f"{report.energy_pj:.4g}")
    out_console.print(table)
    out_console.print(f"saving vs dense ANN: {x_ann:.3g}x   vs dense SNN: {x_snn:.3g}x  (SNN reference: {snn_source})")


def _dense_snn_beside(checkpoint: Path, cfg) -> Path | None:
    """The dense SNN of the same setting in a bench checkpoint folder (R.db.ckpt/HASH.pt).

    A spiking cell names it by config hash. An ANN cell's config has no T or tau
    (normalized away), so its SNN is the one done row of results file R.db whose setting
    matches on everything else; with several (different T) none is chosen.
    """
    from ..results.report import SNN_SETTING
    from ..results.store import ResultStore, config_hash

    if cfg.timesteps is not None:
        h = config_hash(replace(cfg, method="snn").normalized().to_dict())
    else:
        db = checkpoint.parent.with_name(checkpoint.parent.name.removesuffix(".ckpt"))
        if checkpoint.parent.suffix != ".ckpt" or not db.is_file():
            return None
        mine = cfg.to_dict()
        with ResultStore(db, create=False) as store:
            found = [r["config_hash"] for r in store.rows("done") if r["config"].get("method") == "snn"
                     and all(r["config"].get(k) == mine.get(k) for k in SNN_SETTING if k not in ("timesteps", "tau"))]
        if len(found) != 1:
            if found:
                log.warning("energy: %d dense SNNs match %s (different T); pass --snn-checkpoint",
                            len(found), checkpoint)
            return None
        h = found[0]
    sibling = checkpoint.parent / f"{h}.pt"
    return sibling if sibling.is_file() else None
