"""``sjlt energy``: per-layer op counts, neuron updates and energy, with savings vs dense ANN and SNN.

Counts a trained cell (``--checkpoint``), a fresh one (``--arch/--method/...``) or any
user model (``--model-module pkg.mod:build``, a callable returning an ``nn.Module``),
under the rules of docs/energy.md (``RULES``), priced by the chosen cost model; the
totals table shows every registered cost model with synaptic, weight-memory, neuron
and membrane energy in separate columns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import UsageError
from .app import app, err_console, out_console, setup_logging
from .common import dump_json

log = logging.getLogger("spikingjelly_lt")


def _baseline_cfg(cfg, method: str):
    """The dense baseline (``method`` = "ann" or "snn") of the same setting as ``cfg``."""
    return cfg.baseline(method)


@app.command("energy")
def energy_command(
    checkpoint: Annotated[Path | None, typer.Option(help="A trainer checkpoint (RESULTS.db.ckpt/HASH.pt); omit for an untrained model.")] = None,
    model_module: Annotated[str | None, typer.Option(help="Alias of --arch for your own model (MODULE:CALLABLE or FILE.py:CALLABLE); counted as built (method snn unless --method).")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture (without a checkpoint): registered, FILE.py:CALLABLE or MODULE:CALLABLE (default resnet19).")] = None,
    method: Annotated[str | None, typer.Option(help="Method (without a checkpoint; default binw-slt, snn for --model-module).")] = None,
    dataset: Annotated[str, typer.Option(help="Data set (without a checkpoint).")] = "digits",
    data_dir: Annotated[str | None, typer.Option(help="Data folder for CIFAR.")] = None,
    width: Annotated[float, typer.Option(help="Width multiplier (without a checkpoint).")] = 0.25,
    timesteps: Annotated[int, typer.Option(help="T (without a checkpoint; for --model-module: steps per image).")] = 4,
    sparsity: Annotated[float, typer.Option(help="Sparsity (without a checkpoint).")] = 0.5,
    model: Annotated[str, typer.Option("--model", help="Energy cost model (see `sjlt plugins`).")] = "horowitz45",
    pooled_fc: Annotated[str, typer.Option(help="A layer fed by average-pooled spikes: ac (T x rate x dense ACs, default) | mac.")] = "ac",
    snn_checkpoint: Annotated[Path | None, typer.Option(help="A trained dense SNN checkpoint for the x SNN ratio.")] = None,
    images: Annotated[int, typer.Option(help="Test images to count over.")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Count per-layer MACs/ACs and neuron updates from measured firing rates and price them."""
    setup_logging()
    from .. import plugins
    from ..data import load_dataset, make_loader
    from ..energy.counter import POOLED_FC, count_energy, energy_ratio, energy_under

    cost = plugins.lookup("energy_models", model)
    if pooled_fc not in POOLED_FC:
        raise UsageError(f"--pooled-fc must be one of {', '.join(POOLED_FC)}, not {pooled_fc!r}")
    batch = 128
    max_batches = max(1, -(-images // batch))
    x_ann = x_snn = None
    snn_source = None
    config: dict | None = None
    if model_module is not None:  # an alias of --arch, counting the model as built (dense SNN)
        if arch is not None and arch != model_module:
            raise UsageError(f"--model-module {model_module!r} and --arch {arch!r} name two models; give one")
        if ":" not in model_module:
            raise UsageError(f"--model-module wants MODULE:CALLABLE or FILE.py:CALLABLE (e.g. my_pkg.my_net:build), "
                             f"not {model_module!r}")
        arch, method = model_module, method or "snn"
    arch, method = arch or "resnet19", method or "binw-slt"
    from ..build import DataShape, build_model
    from ..training.trainer import load_trained

    if checkpoint is not None:
        cfg, bundle, net = load_trained(checkpoint, data_dir)
        source = str(checkpoint)
        from .common import warn_checkpoint_overrides

        warn_checkpoint_overrides(cfg, source, {"arch": arch, "method": method, "dataset": dataset,
                                                "width": width, "timesteps": timesteps, "sparsity": sparsity})
    else:
        from ..cell import Cell
        from ..methods import resolve

        cell = Cell().replace(method=method, arch=arch, width=width, timesteps=timesteps, sparsity=sparsity,
                              dataset=dataset, limit_test=images)
        cfg = resolve(cell)
        bundle = load_dataset(dataset, data_dir, limit_test=images)
        net = build_model(cfg, DataShape.of(bundle))
        source = "untrained (random init)"
        err_console.print("[yellow]no checkpoint: firing rates of an untrained network[/yellow]")
    loader = make_loader(bundle, "test", batch)
    report = count_energy(net, loader, cost, max_batches=max_batches, pooled_fc=pooled_fc)
    shape = DataShape.of(bundle)
    ann = count_energy(build_model(_baseline_cfg(cfg, "ann"), shape), loader, cost, max_batches=1)
    if snn_checkpoint is None and checkpoint is not None:
        sibling = checkpoint.parent / f"{_baseline_cfg(cfg, 'snn').hash}.pt"
        snn_checkpoint = sibling if sibling.is_file() else None
    if snn_checkpoint is not None:
        snn_cfg, _, snn_net = load_trained(snn_checkpoint, data_dir)
        snn_source = str(snn_checkpoint)
        from .common import check_snn_reference

        check_snn_reference(cfg, snn_cfg, snn_source)
    elif checkpoint is None:  # untrained against untrained: the same footing
        snn_net = build_model(_baseline_cfg(cfg, "snn"), shape)
        snn_source = "untrained dense SNN (pass --snn-checkpoint for a trained one)"
    else:  # a trained cell is never priced against an untrained baseline
        snn_net = None
        snn_source = (f"none: no trained dense SNN of this cell ({_baseline_cfg(cfg, 'snn').hash}.pt) beside "
                      f"{checkpoint}; pass --snn-checkpoint")
    x_ann = energy_ratio(ann, report, cost)
    x_snn = None if snn_net is None else energy_ratio(
        count_energy(snn_net, loader, cost, max_batches=max_batches, pooled_fc=pooled_fc), report, cost)
    config = cfg.cell.to_dict()
    title = f"{cfg.cell.model.arch} {cfg.cell.method}"
    by_model = {name: energy_under(report, name) for name in plugins.names("energy_models")}
    if as_json:
        typer.echo(dump_json({
            "config": config, "source": source, "rules": report.rules, "report": report.to_dict(),
            "energy_by_model": {n: _split(r) for n, r in by_model.items()},
            "x_ann": x_ann, "x_snn": x_snn, "snn_reference": snn_source,
        }))
        return
    table = Table(title=f"{title} — energy under {report.model}, rules {report.rules} ({source})")
    for col, right in (("layer", False), ("rule", False), ("MACs", True), ("ACs", True), ("density", True),
                       ("in rate", True), ("storage", False), ("bits", True), ("pJ", True)):
        table.add_column(col, justify="right" if right else "left")
    for layer in report.layers:
        table.add_row(layer.name, layer.rule, f"{layer.macs:.4g}", f"{layer.acs:.4g}", f"{layer.weight_density:.3f}",
                      "–" if layer.firing_rate is None else f"{layer.firing_rate:.3f}", layer.storage,
                      str(layer.stored_bits), f"{layer.energy_pj:.4g}")
    table.add_section()
    table.add_row("total / image", "", f"{report.macs:.4g}", f"{report.acs:.4g}", "",
                  "–" if report.mean_firing_rate is None else f"{report.mean_firing_rate:.3f}", "",
                  str(sum(r.stored_bits for r in report.layers)), f"{report.energy_pj:.4g}")
    out_console.print(table)
    if report.neurons:
        nt = Table(title=f"neurons (per image; priced by {report.model})")
        for col in ("neuron layer", "kind", "updates", "adds", "mults", "compares", "state bits", "pJ"):
            nt.add_column(col, justify="left" if col in ("neuron layer", "kind") else "right")
        for n in report.neurons:
            nt.add_row(n.name, n.kind, f"{n.updates:.4g}", f"{n.adds:.4g}", f"{n.mults:.4g}", f"{n.compares:.4g}",
                       str(n.state_bits), f"{n.energy_pj:.4g}")
        out_console.print(nt)
    tt = Table(title=f"pJ per image under every cost model (pooled_fc={report.options['pooled_fc']})")
    for col in ("cost model", "binary synapse", "synaptic", "weight memory", "neuron", "membrane", "total"):
        tt.add_column(col, justify="left" if col in ("cost model", "binary synapse") else "right")
    for name, r in by_model.items():
        s = _split(r)
        tt.add_row(name, r.options["binary_synapse"], f"{s['synaptic_pj']:.4g}", f"{s['weight_memory_pj']:.4g}",
                   f"{s['neuron_pj']:.4g}", f"{s['membrane_pj']:.4g}", f"{s['total_pj']:.4g}")
    out_console.print(tt)
    if x_ann is not None:
        vs_snn = "–" if x_snn is None else f"{x_snn:.3g}x"
        out_console.print(f"saving vs dense ANN: {x_ann:.3g}x   vs dense SNN: {vs_snn}  (SNN reference: {snn_source})")


def _split(r) -> dict[str, float]:
    """One report's energy split into the columns ``sjlt energy`` shows."""
    return {"synaptic_pj": r.energy_mac_pj + r.energy_ac_pj, "weight_memory_pj": r.energy_mem_pj,
            "neuron_pj": r.energy_neuron_pj, "membrane_pj": r.energy_membrane_pj, "total_pj": r.energy_pj}
