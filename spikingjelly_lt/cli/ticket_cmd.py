"""``sjlt ticket export|load|info|run``: compact ticket files (see :mod:`spikingjelly_lt.ticket`),
their exact integer-arithmetic inference and NIR export (see :mod:`spikingjelly_lt.deploy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import dump_json, err_console, out_console, setup_logging

__all__ = ["ticket_app"]

ticket_app = typer.Typer(help="Export, inspect and load compact ticket files.", no_args_is_help=True)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _summary(ticket) -> dict:
    h = ticket.header
    return {
        "file": ticket.path,
        "arch": h["arch"],
        "method": h["method"],
        "seed": h["seed"],
        "from_seed": h["from_seed"],
        "dataset": (h.get("cell") or {}).get("dataset"),
        "layers": len(h["layers"]),
        "sizes": ticket.sizes(),
    }


def _print_sizes(ticket, title: str) -> None:
    s = ticket.sizes()
    table = Table(title=title)
    table.add_column("part")
    table.add_column("bytes", justify="right")
    for part in ("masks", "signs", "weights_fp32", "tensors", "header", "framing", "file"):
        table.add_row(part, f"{s[part]:,} ({_human(s[part])})")
    table.add_row("bits per weight", f"{s['bits_per_weight']:.3f} ({s['weights']:,} weights)")
    out_console.print(table)


@ticket_app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="Trainer checkpoint (RESULTS.db.ckpt/<hash>.pt); with --format nir also a .sjlt ticket.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="sjlt (compact ticket) | nir (Neuromorphic Intermediate Representation, HDF5; needs the nir extra).")] = "sjlt",
    store_signs: Annotated[bool, typer.Option("--store-signs", help="Store sign bits (fp supermasks: kept fp32 weights) instead of regrowing frozen weights from the seed.")] = False,
    dt: Annotated[float, typer.Option(help="--format nir: the time step in seconds that maps the discrete LIF to NIR's continuous one (snnTorch assumes 1e-4).")] = 1e-4,
    data_dir: Annotated[str | None, typer.Option(help="Data folder (CIFAR checkpoints: the data set gives the model's shape).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Write a checkpoint's ticket (seed, mask bits, alpha, BN tensors, + sign bits) or its NIR graph."""
    setup_logging()
    from ..errors import check_choice

    check_choice("export format", fmt, ("sjlt", "nir"))
    from .paths import check_output_file

    check_output_file(out, f"{fmt} file", protect=(checkpoint,))  # before any work; never the input
    if fmt == "nir":
        from ..deploy.nir_export import export_nir

        summary = export_nir(checkpoint, out, dt=dt, data_dir=data_dir)
        if as_json:
            typer.echo(dump_json(summary))
            return
        table = Table(title=f"{out} (NIR, {summary['arch']} {summary['method']}, T={summary['timesteps']}, dt={dt:g} s)")
        table.add_column("node kind")
        table.add_column("count", justify="right")
        for kind, n in sorted(summary["node_kinds"].items()):
            table.add_row(kind, str(n))
        table.add_row("edges", str(summary["edges"]))
        table.add_row("file bytes", f"{summary['bytes']:,}")
        out_console.print(table)
        return
    from ..ticket import export_ticket

    ticket = export_ticket(checkpoint, out, store_signs=store_signs, data_dir=data_dir)
    if as_json:
        typer.echo(dump_json(_summary(ticket)))
    else:
        _print_sizes(ticket, f"{out} ({ticket.header['arch']} {ticket.header['method']}, "
                             f"{'from seed' if ticket.header['from_seed'] else 'self-contained'})")


@ticket_app.command("info")
def info_command(
    ticket_file: Annotated[Path, typer.Argument(help="Ticket file.")],
    layers: Annotated[bool, typer.Option("--layers", help="Also list every layer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON: the whole header and the sizes.")] = False,
) -> None:
    """Print a ticket's header (arch, method, spec, seed, layers) and its sizes."""
    setup_logging()
    from ..ticket import read_ticket

    ticket = read_ticket(ticket_file)
    h = ticket.header
    if as_json:
        typer.echo(dump_json({"header": h, "sizes": ticket.sizes()}))
        return
    table = Table(title=f"{ticket_file}")
    table.add_column("field")
    table.add_column("value")
    for key in ("arch", "method", "seed", "from_seed"):
        table.add_row(key, str(h[key]))
    table.add_row("spec", ", ".join(f"{k}={v}" for k, v in h["spec"].items()))
    if h.get("cell"):
        table.add_row("cell", ", ".join(f"{k}={v}" for k, v in h["cell"].items() if v is not None))
    table.add_row("created with", ", ".join(f"{k} {v}" for k, v in h.get("created_with", {}).items()))
    out_console.print(table)
    if layers:
        lt = Table(title="layers")
        for col in ("name", "shape", "kind", "source", "kept", "alpha"):
            lt.add_column(col, justify="right" if col in ("kept", "alpha") else "left")
        for e in h["layers"]:
            alpha = "" if e.get("alpha") is None else f"{e['alpha']:.6g}"
            lt.add_row(e["name"], "x".join(map(str, e["shape"])), e["kind"], e["source"],
                       f"{e['kept']}/{e['numel']}", alpha)
        out_console.print(lt)
    _print_sizes(ticket, "sizes")


@ticket_app.command("load")
def load_command(
    ticket_file: Annotated[Path, typer.Argument(help="Ticket file.")],
    dataset: Annotated[str | None, typer.Option(help="Data set to evaluate on (default: the ticket's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with cifar-10-batches-py / cifar-100-python.")] = None,
    limit_test: Annotated[int | None, typer.Option(help="Evaluate on the first N test images only.")] = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 256,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Rebuild the model from a ticket and print its test accuracy."""
    setup_logging()
    from ..data import load_dataset, make_loader
    from ..errors import UsageError
    from ..pruners.common import sparsity_report
    from ..runner import resolve_device
    from ..ticket import read_ticket
    from ..training.trainer import evaluate

    ticket = read_ticket(ticket_file)
    spec = ticket.spec()
    name = dataset or (ticket.header.get("cell") or {}).get("dataset")
    if not name:
        raise UsageError(f"ticket {ticket_file} records no data set; pass --dataset")
    dev = resolve_device(device)
    bundle = load_dataset(name, data_dir, limit_test=limit_test)
    shape = (bundle.num_classes, bundle.in_channels, bundle.input_size)
    if shape != (spec.num_classes, spec.in_channels, spec.input_size):
        raise UsageError(
            f"data set {name!r} has {shape[0]} classes, {shape[1]} channels, {shape[2]}px input; "
            f"the ticket's model needs {spec.num_classes}, {spec.in_channels}, {spec.input_size}px")
    model = ticket.build().to(dev)
    result = evaluate(model, make_loader(bundle, "test", batch_size), dev)
    row = {
        "file": str(ticket_file),
        "arch": spec.arch,
        "method": spec.method,
        "dataset": name,
        "images": int(bundle.test_y.numel()),
        "top1": result["top1"],
        "sparsity": sparsity_report(model)["sparsity"],
        "mean_firing_rate": result["mean_firing_rate"],
    }
    if as_json:
        typer.echo(dump_json(row))
        return
    table = Table(title=f"{ticket_file}")
    for col in ("arch", "method", "dataset", "images", "top-1 %", "sparsity %", "firing rate"):
        table.add_column(col, justify="right" if col in ("images", "top-1 %", "sparsity %", "firing rate") else "left")
    rate = row["mean_firing_rate"]
    table.add_row(spec.arch, spec.method, name, str(row["images"]), f"{100 * row['top1']:.2f}",
                  f"{100 * row['sparsity']:.1f}", "–" if rate is None else f"{rate:.3f}")
    out_console.print(table)
    err_console.print(f"loaded {ticket_file}: top-1 {100 * row['top1']:.2f}% on {row['images']} {name} test images")


@ticket_app.command("run")
def run_command(
    ticket_file: Annotated[Path, typer.Argument(help="Ticket file (.sjlt) or trainer checkpoint.")],
    dataset: Annotated[str | None, typer.Option(help="Data set to run on (default: the ticket's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with cifar-10-batches-py / cifar-100-python.")] = None,
    engine: Annotated[str, typer.Option(help="auto | int8 | bf16 | fp16 | fp32: the exact integer product (auto: the fastest this CPU has; fp16 on CUDA).")] = "auto",
    first_layer: Annotated[str, typer.Option(help="Precision of the first conv on the real image: fp32 | bf16.")] = "fp32",
    storage: Annotated[str, typer.Option(help="Resident weights: packed (1.6 bit, unpacked per call) | int8 (kept in the engine's form).")] = "packed",
    lif: Annotated[str, typer.Option(help="LIF membrane update: torch (elementwise ops) | native (fused C++ kernel, built on first use, bit-identical) | auto (native when it builds).")] = "auto",
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N | auto (both paths run there; a GPU checks the engine's sums against float64 on its first call).")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Batch size (both paths).")] = 256,
    limit_test: Annotated[int | None, typer.Option(help="Run on the first N test images only.")] = None,
    reference: Annotated[bool, typer.Option("--reference/--no-reference", help="Also check against the float64 reference (z, spikes, predictions) and trace the fp32 model's deviations.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
) -> None:
    """Run a ticket on the compiled integer engine and on the fp32 model: accuracy, images/s, agreement."""
    setup_logging()
    from ..deploy.run import run_ticket

    err_console.print(f"running {ticket_file} ...")
    r = run_ticket(ticket_file, dataset=dataset, data_dir=data_dir, engine=engine, first_layer=first_layer,
                   storage=storage, lif=lif, device=device, batch_size=batch_size, limit_test=limit_test,
                   reference=reference)
    if as_json:
        typer.echo(dump_json(r))
        return
    cpu = r["cpu"]
    table = Table(title=f"{ticket_file} ({r['arch']} {r['method']}, {r['dataset']}, {r['images']} images, T={r['timesteps']})")
    for col in ("path", "top-1 %", "images/s", "resident weight bytes"):
        table.add_column(col, justify="left" if col == "path" else "right")
    eb, mb = r["resident_bytes_engine"], r["resident_bytes_model"]
    table.add_row(f"engine {r['engine']} ({r['storage']}, first layer {r['first_layer']}, LIF {r['lif']})",
                  f"{100 * r['top1_engine']:.2f}", f"{r['images_per_s_engine']:.1f}", f"{eb['weights']:,}")
    table.add_row(f"fp32 model ({r['model_memory_format']})", f"{100 * r['top1_model']:.2f}", f"{r['images_per_s_model']:.1f}", f"{mb['weights']:,}")
    out_console.print(table)
    lines = [f"speed-up {r['speedup']:.2f}x, weights {r['weight_ratio']:.1f}x smaller "
             f"(all resident tensors {r['total_ratio']:.1f}x)",
             f"prediction agreement engine vs fp32 model: {r['agree_images']}/{r['images']} "
             f"({100 * r['agreement']:.2f} %)"]
    if r["checks"]:
        ev, mv = r["checks"]["engine_vs_reference"], r["checks"]["model_vs_reference"]
        lines.append(f"engine vs float64 reference: {ev['z_layers_differing']} layer outputs z differ, "
                     f"{ev['images_with_spike_difference']} images with a spike difference, "
                     f"{ev['prediction_differences']} predictions differ")
        lines.append(f"fp32 model vs reference: {mv['images_with_spike_difference']} images with a spike flip "
                     f"({mv['traced_within_tol']} traced to a membrane within {r['checks']['tol']:g} of threshold, "
                     f"max {mv['max_margin']:.2e}); {mv['prediction_differences']} predictions differ "
                     f"({mv['prediction_differences_traced_to_flip']} traced to such a flip, "
                     f"{mv['prediction_differences_traced_to_logit_tie']} to an exact tie of the reference logits)")
    lines.append(f"CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or '-'}; torch {cpu['torch_capability']}, "
                 f"{cpu['threads']} threads")
    for line in lines:
        out_console.print(line)
