"""``sjlt energy``: per-layer op counts, neuron updates and energy, with savings vs dense ANN and SNN.

Counts a trained cell (``--checkpoint``), a fresh one (``--arch/--method/...``) or any
user model (``--model-module pkg.mod:build``, a callable returning an ``nn.Module``),
under the rules of docs/energy.md (``RULES``), priced by the chosen cost model; the
totals table shows every registered cost model with synaptic, weight-memory, neuron
and membrane energy in separate columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import UsageError
from .console import dump_json, err_console, out_console, setup_logging

if TYPE_CHECKING:
    from torch import nn

    from ..methods import Resolved

log = logging.getLogger("spikingjelly_lt")


BATCH = 128  # test images per counted batch


@dataclass
class _Subject:
    """What ``sjlt energy`` counts: a resolved cell, its data and its network."""

    resolved: Resolved
    bundle: Any
    net: nn.Module
    source: str  # the checkpoint, or that the network is untrained


@dataclass
class _Savings:
    """The savings of the counted network, and which dense SNN they are against."""

    x_ann: float | None
    x_snn: float | None
    snn_reference: str


def energy_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path | None, typer.Option(help="A trainer checkpoint (RESULTS.db.ckpt/HASH.pt); omit for an untrained model.")] = None,
    model_module: Annotated[str | None, typer.Option(help="Alias of --arch for your own model (MODULE:CALLABLE or FILE.py:CALLABLE); counted as built (method snn unless --method).")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture (without a checkpoint): registered, FILE.py:CALLABLE or MODULE:CALLABLE (default: the profile's).")] = None,
    method: Annotated[str | None, typer.Option(help="Method (without a checkpoint; default binw-slt, snn for --model-module).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (without a checkpoint; default: the profile's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data folder for CIFAR.")] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier (without a checkpoint; default: the profile's).")] = None,
    timesteps: Annotated[int | None, typer.Option(help="T (without a checkpoint; for --model-module: steps per image; default: the profile's).")] = None,
    sparsity: Annotated[float | None, typer.Option(help="Sparsity (without a checkpoint; default: the cell's, 0.5).")] = None,
    profile: Annotated[str, typer.Option(help="Profile whose recipe builds the model without a checkpoint, as `sjlt bench` builds its cells (`sjlt profiles`).")] = "smoke",
    model: Annotated[str, typer.Option("--model", help="Energy cost model (see `sjlt plugins`).")] = "horowitz45",
    pooled_fc: Annotated[str, typer.Option(help="A layer fed by average-pooled spikes: ac (T x rate x dense ACs, default) | mac.")] = "ac",
    snn_checkpoint: Annotated[Path | None, typer.Option(help="A trained dense SNN checkpoint for the x SNN ratio.")] = None,
    images: Annotated[int, typer.Option(help="Test images to count over.")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Count per-layer MACs/ACs and neuron updates from measured firing rates and price them."""
    setup_logging()
    from .. import plugins
    from ..data import make_loader
    from ..energy.counter import POOLED_FC, count_energy
    from ..energy.report import energy_under

    cost = plugins.lookup("energy_models", model)
    if pooled_fc not in POOLED_FC:
        raise UsageError(f"--pooled-fc must be one of {', '.join(POOLED_FC)}, not {pooled_fc!r}")
    options = {"arch": arch, "method": method, "dataset": dataset, "width": width, "timesteps": timesteps,
               "sparsity": sparsity}
    if checkpoint is not None:
        subject = _trained(checkpoint, data_dir, options, ctx)
    else:
        subject = _untrained(profile, data_dir, images, model_module=model_module, **options)
    loader = make_loader(subject.bundle, "test", BATCH)
    max_batches = max(1, -(-images // BATCH))
    report = count_energy(subject.net, loader, cost, max_batches=max_batches, pooled_fc=pooled_fc)
    savings = _savings(subject, report, loader, cost, checkpoint=checkpoint, snn_checkpoint=snn_checkpoint,
                       data_dir=data_dir, max_batches=max_batches, pooled_fc=pooled_fc)
    by_model = {name: energy_under(report, name) for name in plugins.names("energy_models")}
    if as_json:
        typer.echo(dump_json({
            "config": subject.resolved.cell.to_dict(), "source": subject.source, "rules": report.rules,
            "report": report.to_dict(), "energy_by_model": {n: _split(r) for n, r in by_model.items()},
            "x_ann": savings.x_ann, "x_snn": savings.x_snn, "snn_reference": savings.snn_reference,
        }))
        return
    _print_tables(subject, report, by_model, savings)


def _trained(checkpoint: Path, data_dir: str | None, options: dict, ctx: typer.Context) -> _Subject:
    """A trained cell from its checkpoint; options typed on the command line that it fixes are one warning."""
    from ..training.checkpoint import load_trained

    resolved, bundle, net = load_trained(checkpoint, data_dir)
    warn_checkpoint_overrides(resolved, str(checkpoint), options, ctx)
    return _Subject(resolved, bundle, net, str(checkpoint))


def _untrained(profile: str, data_dir: str | None, images: int, *, model_module: str | None, arch: str | None,
               method: str | None, **options) -> _Subject:
    """A fresh network of the profile's cell with the options on top (``--model-module``: an alias of
    ``--arch``, counted as built: a dense SNN unless ``--method``)."""
    from ..build import DataShape, build_model
    from ..data import load_dataset
    from ..methods import resolve
    from ..profiles import request_cell

    if model_module is not None:
        if arch is not None and arch != model_module:
            raise UsageError(f"--model-module {model_module!r} and --arch {arch!r} name two models; give one")
        if ":" not in model_module:
            raise UsageError(f"--model-module wants MODULE:CALLABLE or FILE.py:CALLABLE (e.g. my_pkg.my_net:build), "
                             f"not {model_module!r}")
        arch, method = model_module, method or "snn"
    cell, _ = request_cell(profile, options={
        "method": method or "binw-slt", "model.arch": arch, "data.dataset": options["dataset"],
        "model.width": options["width"], "model.timesteps": options["timesteps"], "sparsity": options["sparsity"],
        "data.limit_test": images})
    resolved = resolve(cell)
    bundle = load_dataset(cell.data.dataset, data_dir, limit_test=images)
    net = build_model(resolved, DataShape.of(bundle))
    err_console.print("[yellow]no checkpoint: firing rates of an untrained network[/yellow]")
    return _Subject(resolved, bundle, net, "untrained (random init)")


def _savings(subject: _Subject, report, loader, cost, *, checkpoint: Path | None, snn_checkpoint: Path | None,
             data_dir: str | None, max_batches: int, pooled_fc: str) -> _Savings:
    """x ANN against the dense ANN of the same setting; x SNN against its dense SNN: the trained one
    (``--snn-checkpoint``, or the checkpoint's sibling in the same folder), an untrained one for an
    untrained network, and none for a trained network without a trained SNN."""
    from ..build import DataShape, build_model
    from ..energy.counter import count_energy
    from ..energy.report import energy_ratio

    resolved, shape = subject.resolved, DataShape.of(subject.bundle)
    ann = count_energy(build_model(resolved.baseline("ann"), shape), loader, cost, max_batches=1)
    snn_hash = resolved.baseline("snn").hash
    if snn_checkpoint is None and checkpoint is not None:
        sibling = checkpoint.parent / f"{snn_hash}.pt"
        snn_checkpoint = sibling if sibling.is_file() else None
    if snn_checkpoint is not None:
        from ..training.checkpoint import load_trained

        snn_resolved, _, snn_net = load_trained(snn_checkpoint, data_dir)
        snn_source = str(snn_checkpoint)
        check_snn_reference(resolved, snn_resolved, snn_source)
    elif checkpoint is None:  # untrained against untrained: the same footing
        snn_net = build_model(resolved.baseline("snn"), shape)
        snn_source = "untrained dense SNN (pass --snn-checkpoint for a trained one)"
    else:  # a trained cell is never priced against an untrained baseline
        snn_net = None
        snn_source = (f"none: no trained dense SNN of this cell ({snn_hash}.pt) beside {checkpoint}; "
                      "pass --snn-checkpoint")
    x_snn = None if snn_net is None else energy_ratio(
        count_energy(snn_net, loader, cost, max_batches=max_batches, pooled_fc=pooled_fc), report, cost)
    return _Savings(energy_ratio(ann, report, cost), x_snn, snn_source)


# ``sjlt energy`` options that describe a model, and where a checkpoint's cell keeps each
_CELL_OPTIONS = {"arch": "model.arch", "method": "method", "dataset": "data.dataset", "width": "model.width",
                 "timesteps": "model.timesteps", "sparsity": "sparsity"}


def warn_checkpoint_overrides(resolved, source: str, values: dict, ctx: typer.Context) -> None:
    """One warning line for options typed on the command line that ``source`` (a checkpoint) fixes."""
    # Click's ParameterSource (compared by name: typer >= 0.2x carries its own copy of Click)
    given = [n for n in values
             if n in _CELL_OPTIONS and getattr(ctx.get_parameter_source(n), "name", None) == "COMMANDLINE"]
    if not given:
        return
    fixed = []
    for name in given:
        try:
            fixed.append(f"{_CELL_OPTIONS[name]}={resolved.cell.get(_CELL_OPTIONS[name])}")
        except Exception:  # noqa: BLE001 - a field this cell does not have
            fixed.append(name)
    log.warning(
        "%s ignored: the checkpoint %s fixes %s", ", ".join(f"--{n} {values[n]}" for n in given), source,
        ", ".join(fixed))


def check_snn_reference(resolved, snn_resolved, source: str) -> None:
    """``--snn-checkpoint`` must be a dense SNN of the same architecture, data and shape."""
    if snn_resolved.method.name != "snn":
        raise UsageError(f"--snn-checkpoint {source} is a {snn_resolved.method.name!r} cell, not a dense SNN "
                         f"(method 'snn'); the x SNN saving needs the dense SNN of the same setting")
    diff = []
    for key in ("model.arch", "data.dataset", "model.width", "model.timesteps"):
        a, b = resolved.cell.get(key), snn_resolved.cell.get(key)
        if key == "model.timesteps" and resolved.method.neuron != "lif":
            continue  # an ANN cell has no time steps of its own
        if a != b:
            diff.append(f"{key} {b!r} (not {a!r})")
    if diff:
        raise UsageError(f"--snn-checkpoint {source} is a dense SNN of another setting: " + ", ".join(diff))


def _print_tables(subject: _Subject, report, by_model: dict, savings: _Savings) -> None:
    """The per-layer table, the neuron table, the totals under every cost model and the savings line."""
    cell = subject.resolved.cell
    table = Table(title=f"{cell.model.arch} {cell.method} — energy under {report.model}, rules {report.rules} "
                        f"({subject.source})")
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
    if savings.x_ann is not None:
        vs_snn = "–" if savings.x_snn is None else f"{savings.x_snn:.3g}x"
        out_console.print(f"saving vs dense ANN: {savings.x_ann:.3g}x   vs dense SNN: {vs_snn}  "
                          f"(SNN reference: {savings.snn_reference})")


def _split(r) -> dict[str, float]:
    """One report's energy split into the columns ``sjlt energy`` shows."""
    return {"synaptic_pj": r.energy_mac_pj + r.energy_ac_pj, "weight_memory_pj": r.energy_mem_pj,
            "neuron_pj": r.energy_neuron_pj, "membrane_pj": r.energy_membrane_pj, "total_pj": r.energy_pj}
