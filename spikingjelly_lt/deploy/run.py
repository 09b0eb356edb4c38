"""Run a ticket through the compiled engine and the fp32 model on the same images.

:func:`run_ticket` reports accuracy and images/s of both paths (interleaved batch by
batch, so the ratio comes from one run), the engine and the CPU, and three agreement
figures: engine vs float64 reference (exact: z, spikes, predictions), engine vs fp32
model (predictions), and the fp32 model's own deviations from the reference, each
traced to the first neuron layer and time step where its spikes differ: a deviation is
*traced* when every neuron flipped there had a float64 membrane within ``tol`` of its
threshold (the fp32 model rounds its sums; everything upstream was identical).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from torch import nn

from .._sj import reset_net
from ..errors import UsageError
from .cpu import cpu_info
from .compiled import CompiledNet, compile_model, reference_forward, weight_bytes

__all__ = ["load_model", "run_ticket", "compare_batch", "logits_tie", "TRACE_TOL", "TIE_TOL"]

log = logging.getLogger("spikingjelly_lt")

REFERENCE_CHUNK_CUDA = 32  # images per float64 reference pass on a GPU
TRACE_TOL = 1e-4  # |H_float64 - v_threshold| that counts as "within fp32 rounding of the threshold"
TIE_TOL = 1e-5  # relative gap of two reference logits that fp32 rounding can invert


def logits_tie(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Whether logits ``a`` and ``b`` (elementwise) tie: within :data:`TIE_TOL` of ``|b|`` (at least
    of 1), a gap that fp32 rounding can invert."""
    return (a - b).abs() <= TIE_TOL * b.abs().clamp(min=1.0)


def _is_ticket(path: Path) -> bool:
    from ..ticket import MAGIC

    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _dataset_of(cell: dict | None) -> str | None:
    """The data set a ticket's or checkpoint's cell record names (flat or nested layout)."""
    cell = cell or {}
    return cell.get("dataset") or (cell.get("data") or {}).get("dataset")


def _layout_of(cell: dict | None) -> str:
    """The layout the cell trained and evaluated in (``recipe.memory_format``; cells from
    before the field ran NCHW)."""
    cell = cell or {}
    fmt = cell.get("memory_format") or (cell.get("recipe") or {}).get("memory_format")  # flat or nested
    if fmt == "auto":  # measured per machine at training time; the default path's layout
        return "channels_last"
    return fmt if fmt in ("channels_last", "contiguous") else "contiguous"


def _spec_dict(spec) -> dict:
    keys = ("arch", "method", "num_classes", "in_channels", "input_size")
    return {k: getattr(spec, k, None) for k in keys}


def load_model(source: str | os.PathLike, data_dir: str | None = None) -> tuple[nn.Module, dict, str | None]:
    """``(fp32 model, {arch, method, num_classes, in_channels, input_size, memory_format},
    data set)`` of a ticket file or a trainer checkpoint."""
    path = Path(source)
    if path.is_dir():
        raise UsageError(f"{path} is a directory (expected a .sjlt ticket or a trainer checkpoint)")
    if not path.is_file():
        raise UsageError(f"{path} does not exist (expected a .sjlt ticket or a trainer checkpoint)")
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty (0 bytes): neither a .sjlt ticket nor a trainer checkpoint")
    if _is_ticket(path):
        from ..ticket import read_ticket

        ticket = read_ticket(path)
        cell = ticket.header.get("cell")
        return ticket.build(), {**_spec_dict(ticket.spec()), "memory_format": _layout_of(cell)}, _dataset_of(cell)
    from ..ticket import model_from_checkpoint

    model, spec, cell = model_from_checkpoint(path, data_dir)
    return model.eval(), {**_spec_dict(spec), "memory_format": _layout_of(cell)}, _dataset_of(cell)


class _SpikeTap:
    """Forward hooks that keep each neuron module's output (the fp32 model's spikes)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        modules = dict(model.named_modules())
        self.out: dict[str, torch.Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names if n in modules]

    def _hook(self, name: str):
        def hook(_m, _i, o):
            self.out[name] = o.detach()
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _model_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    if getattr(model, "timesteps", None) is not None:
        reset_net(model)
    return out


def compare_batch(net: CompiledNet, model: nn.Module, x: torch.Tensor, tol: float = TRACE_TOL) -> dict:
    """Engine, fp32 model and float64 reference on one batch: exactness and traced deviations."""
    x = x.to(net.device)
    record: dict = {}
    logits_e = net(x, record=record)
    logits_r, ref = reference_forward(net, x)
    neurons = net.neurons()
    tap = _SpikeTap(model, [n.name for n in neurons])
    try:
        logits_m = _model_logits(model, x)
    finally:
        tap.close()
    n_img = x.shape[0]
    steps = net.timesteps or 1
    z_bad = sum(int(not torch.equal(record[k]["z"].double(), ref[k]["z"])) for k in ref if "z" in ref[k])
    spike_bad_images = torch.zeros(n_img, dtype=torch.bool, device=net.device)
    for nrn in neurons:
        e, r = record[nrn.name]["spikes"], ref[nrn.name]["spikes"]
        diff = (e != r).reshape(steps, n_img, -1).any(2).any(0)
        spike_bad_images |= diff
    # the fp32 model's deviations, traced to the first differing layer and step
    margins: list[float | None] = [None] * n_img
    first_layers: dict[str, int] = {}
    assigned = torch.zeros(n_img, dtype=torch.bool, device=net.device)
    for nrn in neurons:
        m_out = tap.out.get(nrn.name)
        if m_out is None:
            continue
        m_s = ((m_out >= 0) if nrn.kind == "sign" else (m_out != 0)).reshape(steps, n_img, -1)
        r_s = ref[nrn.name]["spikes"].reshape(steps, n_img, -1).bool()
        d = m_s != r_s
        new = d.any(2).any(0) & ~assigned
        if not bool(new.any()):
            continue
        h_all = ref[nrn.name]["h"].reshape(steps, n_img, -1)
        thr = 0.0 if nrn.kind == "sign" else nrn.v_threshold
        for i in new.nonzero().flatten().tolist():
            t = int(d[:, i].any(1).nonzero()[0])
            margins[i] = float((h_all[t, i][d[t, i]] - thr).abs().max())
            first_layers[nrn.name] = first_layers.get(nrn.name, 0) + 1
        assigned |= new
    pe, pr, pm = logits_e.argmax(1), logits_r.argmax(1), logits_m.argmax(1)
    flip_margins = [m for m in margins if m is not None]
    by_flip = by_tie = 0
    for i in (pm != pr).nonzero().flatten().tolist():
        if margins[i] is not None:
            by_flip += int(margins[i] <= tol)
        else:  # identical spikes: the reference logits tie and fp32 rounding picked the other class
            by_tie += int(logits_tie(logits_r[i, pm[i]], logits_r[i, pr[i]]))
    return {
        "images": n_img,
        "pred_engine": pe,
        "pred_model": pm,
        "engine_vs_reference": {
            "z_layers_differing": z_bad,
            "images_with_spike_difference": int(spike_bad_images.sum()),
            "prediction_differences": int((pe != pr).sum()),
        },
        "model_vs_reference": {
            "images_with_spike_difference": len(flip_margins),
            "traced_within_tol": sum(m <= tol for m in flip_margins),
            "max_margin": max(flip_margins, default=0.0),
            "first_layers": first_layers,
            "prediction_differences": int((pm != pr).sum()),
            "prediction_differences_traced_to_flip": by_flip,
            "prediction_differences_traced_to_logit_tie": by_tie,
        },
    }


def run_ticket(
    source: str | os.PathLike,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    engine: str = "auto",
    first_layer: str = "fp32",
    storage: str = "packed",
    lif: str = "auto",
    device: str = "cpu",
    batch_size: int = 256,
    limit_test: int | None = None,
    reference: bool = True,
    tol: float = TRACE_TOL,
) -> dict:
    """Accuracy, images/s and agreement of the compiled engine vs the fp32 model on a test set."""
    from ..data import load_dataset, make_loader

    model, spec, recorded = load_model(source, data_dir)
    name = dataset or recorded
    if not name:
        raise UsageError(f"{source} records no data set; pass --dataset")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    net = compile_model(model, engine=engine, first_layer=first_layer, storage=storage, lif=lif, device=device)
    bundle = load_dataset(name, data_dir, limit_test=limit_test)
    shape = (bundle.num_classes, bundle.in_channels, bundle.input_size)
    want = (spec.get("num_classes"), spec.get("in_channels"), spec.get("input_size"))
    if shape != want:
        raise UsageError(f"data set {name!r} has {shape[0]} classes, {shape[1]} channels, {shape[2]}px input; "
                         f"the model needs {want[0]}, {want[1]}, {want[2]}px")
    layout = torch.channels_last if spec["memory_format"] == "channels_last" else torch.contiguous_format
    model = model.to(net.device).eval().to(memory_format=layout)  # the fp32 model as the product runs it
    if net.device.type == "cuda":
        from ..training.precision import precision_for

        precision_for("fp32", net.device).apply()  # the fp32 model in fp32: TF32 would flip spikes untraced
        sync = lambda: torch.cuda.synchronize(net.device)  # noqa: E731 - the engine's device, not the current one
    else:
        sync = lambda: None  # noqa: E731
    # the float64 reference keeps every layer's records: on a GPU, compare in chunks (width 1 at
    # batch 256 would hold ~35-40 GB of them)
    ref_chunk = min(batch_size, REFERENCE_CHUNK_CUDA) if net.device.type == "cuda" else batch_size
    t_engine = t_model = 0.0
    correct_e = correct_m = agree = total = 0
    checks = {"engine_vs_reference": {}, "model_vs_reference": {}}
    disagreements: list[dict] = []
    for b, (x, y) in enumerate(make_loader(bundle, "test", batch_size)):
        x, y = x.to(net.device), y.to(net.device)
        order = (0, 1) if b % 2 == 0 else (1, 0)  # interleave which path runs first
        for which in order:
            sync()
            start = time.perf_counter()
            if which == 0:
                pe = net(x).argmax(1)
                sync()
                t_engine += time.perf_counter() - start
            else:
                pm = _model_logits(model, x.contiguous(memory_format=layout)).argmax(1)
                sync()
                t_model += time.perf_counter() - start
        correct_e += int((pe == y).sum())
        correct_m += int((pm == y).sum())
        agree += int((pe == pm).sum())
        total += y.numel()
        for lo in range(0, y.numel() if reference else 0, ref_chunk):
            c = compare_batch(net, model, x[lo:lo + ref_chunk], tol)
            if not torch.equal(c["pred_engine"], pe[lo:lo + ref_chunk]):
                raise RuntimeError("the compiled engine is not deterministic across calls")
            for part in ("engine_vs_reference", "model_vs_reference"):
                acc = checks[part]
                for k, v in c[part].items():
                    if k == "max_margin":
                        acc[k] = max(acc.get(k, 0.0), v)
                    elif k == "first_layers":
                        for lk, lv in v.items():
                            acc.setdefault(k, {})[lk] = acc.setdefault(k, {}).get(lk, 0) + lv
                    else:
                        acc[k] = acc.get(k, 0) + v
        if reference:
            for i in (pe != pm).nonzero().flatten().tolist():
                disagreements.append({"index": b * batch_size + i, "engine": int(pe[i]), "model": int(pm[i]),
                                      "label": int(y[i])})
        log.debug("batch %d: %d images", b, y.numel())
    if reference:
        checks["model_vs_reference"].setdefault("first_layers", {})
        checks["tol"] = tol
    info = cpu_info()
    mb = weight_bytes(model)
    eb = net.resident_bytes()
    return {
        "source": str(source),
        "arch": spec.get("arch"),
        "method": spec.get("method"),
        "dataset": name,
        "images": total,
        "timesteps": net.timesteps,
        "engine": net.engine,
        "engine_requested": engine,
        "first_layer": first_layer,
        "storage": storage,
        "lif": net.lif,
        "device": str(net.device),
        "model_memory_format": spec["memory_format"],
        "cpu": info.to_dict(),
        "top1_engine": correct_e / max(total, 1),
        "top1_model": correct_m / max(total, 1),
        "images_per_s_engine": total / t_engine if t_engine > 0 else None,
        "images_per_s_model": total / t_model if t_model > 0 else None,
        "speedup": (t_model / t_engine) if t_engine > 0 else None,
        "agreement": agree / max(total, 1),
        "agree_images": agree,
        "disagreements": disagreements if reference else None,
        "checks": checks if reference else None,
        "resident_bytes_engine": eb,
        "resident_bytes_model": mb,
        "weight_ratio": mb["weights"] / max(eb["weights"], 1),
        "total_ratio": mb["total"] / max(eb["total"], 1),
    }
