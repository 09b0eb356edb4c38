"""Train and measure one benchmark cell (design 2.2, 2.4).

Flow: data -> model (arch + method) -> train (IMP: K rounds with rewinding) ->
measure (top-1, achieved sparsity, firing rates, energy, storage, speed). Seeded and
deterministic on CPU; an atomic checkpoint at each epoch end lets an interrupted
cell continue where it stopped. A non-finite loss raises :class:`CellFailed`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from .. import plugins
from .._sj import reset_net
from ..build import build_model
from ..data import load_dataset, make_loader
from ..energy.counter import EnergyCounter, count_energy, energy_under
from ..methods import get_method
from ..pruners import imp as imp_ops
from ..pruners.common import effective_weight, prunable_layers, sparsity_report
from .checkpoint import load_checkpoint, save_checkpoint
from .config import CellConfig
from .distributed import broadcast_buffers, broadcast_masks, init_distributed, make_sampler, wrap_ddp
from .metrics import FiringRateMonitor, evaluating, model_storage

__all__ = ["run_cell", "CellFailed", "Progress", "build_cell_model", "evaluate", "mask_digest", "load_trained"]

log = logging.getLogger("spikingjelly_lt")

Progress = Callable[..., None]  # progress(event, **info); events: start, epoch, step, round, done


class CellFailed(RuntimeError):
    """The cell could not finish (e.g. a non-finite loss); ``str()`` is the reason."""


def _noop(event: str, **info) -> None:
    pass


def build_cell_model(cfg: CellConfig, bundle) -> nn.Module:
    """The cell's model on ``bundle``'s data (arch + method + recipe)."""
    return build_model(cfg.model_spec(bundle))


def _optimizer(model: nn.Module, cfg: CellConfig, steps: int):
    """Adam + cosine for supermask search (scores), SGD momentum + cosine for weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    if get_method(cfg.method).search == "supermask":
        opt = torch.optim.Adam(params, lr=cfg.score_lr, weight_decay=0.0)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    return opt, sched


def evaluate(model: nn.Module, loader, device: torch.device, energy_model: str | None = None):
    """Top-1, neuron firing rates and (optionally) energy counts in one eval pass."""
    spiking = getattr(model, "timesteps", None) is not None
    correct = total = 0
    counter = EnergyCounter(model, energy_model) if energy_model else None
    monitor = FiringRateMonitor(model)
    start = time.perf_counter()
    with evaluating(model), monitor:
        if counter:
            counter.__enter__()
        try:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                out = model(x)
                if spiking:
                    reset_net(model)
                correct += int((out.argmax(1) == y).sum())
                total += y.numel()
        finally:
            if counter:
                counter.__exit__(None, None, None)
    seconds = time.perf_counter() - start
    return {
        "top1": correct / max(total, 1),
        "eval_images_per_s": total / seconds if seconds > 0 else None,
        "firing_rates": monitor.rates(),
        "mean_firing_rate": monitor.mean_rate(),
        "energy": counter.report() if counter else None,
    }


def mask_digest(model: nn.Module) -> str:
    """sha256 (16 hex) over every layer's running-weight mask: identical tickets, identical digest."""
    import hashlib

    h = hashlib.sha256()
    for name, module in prunable_layers(model):
        w = effective_weight(module)
        h.update(name.encode())
        h.update((w != 0).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(modules[name], "weight", mask)


def _masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight_mask.detach().clone() for n, m in prunable_layers(model) if hasattr(m, "weight_mask")}


def run_cell(
    cfg: CellConfig,
    *,
    data_dir: str | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    progress: Progress | None = None,
    snn_energy_pj: float | None = None,
) -> dict:
    """Train and measure one cell; returns its metrics dict (design 2.4).

    ``checkpoint``: where to keep the epoch-end checkpoint; if it exists for the same
    config, training continues from it. ``snn_energy_pj``: the dense SNN's energy for
    the same arch/data (same cost model), to report the saving ``x SNN``.

    Under torchrun each rank trains on ``batch_size / world`` images of every global
    batch; only rank 0 reports progress and writes the checkpoint.
    """
    cfg = cfg.validate().normalized()
    device = torch.device(device)
    ddp = init_distributed(device)
    progress = (progress or _noop) if ddp.rank == 0 else _noop
    if cfg.batch_size % ddp.world:
        raise CellFailed(f"batch size {cfg.batch_size} is not divisible by the {ddp.world} processes")
    method = get_method(cfg.method)
    pruner = plugins.lookup("pruners", method.search)
    iterative = getattr(pruner, "search", None) == "imp"
    rounds = cfg.imp_rounds if iterative else 0
    bundle = load_dataset(cfg.dataset, data_dir, limit_train=cfg.limit_train, limit_test=cfg.limit_test)
    train_loader = make_loader(bundle, "train", cfg.batch_size // ddp.world, seed=cfg.seed, drop_last=True,
                               sampler=make_sampler(len(bundle.train_y), cfg.seed))
    test_loader = make_loader(bundle, "test", 256)
    if len(train_loader) == 0:
        raise CellFailed(f"batch size {cfg.batch_size} exceeds the {bundle.train_x.shape[0]} training images")

    model = build_cell_model(cfg, bundle).to(device)
    rate = imp_ops.round_rate(cfg.sparsity, rounds) if iterative else 0.0
    rewind_epoch = min(cfg.rewind_epoch, cfg.epochs)
    state = {"round": 0, "epoch": 0, "elapsed": 0.0, "images": 0, "rewind": None, "history": []}
    opt, sched = _optimizer(model, cfg, cfg.epochs * len(train_loader))
    if checkpoint and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint)
        if ck.get("config") != cfg.to_dict():
            raise CellFailed(f"checkpoint {checkpoint} belongs to another config; move it away")
        _apply_masks(model, ck["masks"])
        model.load_state_dict(ck["model"])
        opt, sched = _optimizer(model, cfg, cfg.epochs * len(train_loader))
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state.update({k: ck[k] for k in ("round", "epoch", "elapsed", "images", "rewind", "history")})
        log.info("resuming %s from round %d epoch %d", cfg.method, state["round"], state["epoch"])
    spiking = model.timesteps is not None
    train_model = wrap_ddp(model, device)
    checkpoint = checkpoint if ddp.rank == 0 else None
    progress("start", config=cfg.to_dict(), rounds=rounds, epochs=cfg.epochs, steps=len(train_loader))

    while state["round"] <= rounds:
        if state["rewind"] is None and rewind_epoch == 0 and iterative:
            state["rewind"] = imp_ops.snapshot(model)
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            model.train()
            train_loader.set_epoch(state["round"] * cfg.epochs + epoch)
            t0 = time.perf_counter()
            loss_sum, seen, correct = torch.zeros(()), 0, torch.zeros((), dtype=torch.long)
            for step, (x, y) in enumerate(train_loader):
                x, y = x.to(device), y.to(device)
                out = train_model(x)
                loss = nn.functional.cross_entropy(out, y)
                if not torch.isfinite(loss):
                    raise CellFailed(f"non-finite loss ({loss.item()}) at round {state['round']} epoch {epoch + 1} step {step + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if spiking:
                    reset_net(model)
                loss_sum += loss.detach() * y.numel()
                correct += (out.detach().argmax(1) == y).sum()
                seen += y.numel()
                progress("step", step=step + 1, steps=len(train_loader))
            dt = time.perf_counter() - t0
            state["elapsed"] += dt
            state["images"] += seen * ddp.world
            state["epoch"] = epoch + 1
            broadcast_buffers(model)  # BN running stats: rank 0's on every rank
            row = {"round": state["round"], "epoch": epoch + 1, "loss": float(loss_sum) / seen,
                   "train_acc": float(correct) / seen, "images_per_s": seen / dt}
            state["history"].append(row)
            progress("epoch", **row)
            if iterative and state["rewind"] is None and state["epoch"] == rewind_epoch:
                state["rewind"] = imp_ops.snapshot(model)
            if checkpoint:
                save_checkpoint(checkpoint, {
                    "config": cfg.to_dict(), "model": model.state_dict(), "masks": _masks(model),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **state})
        if state["round"] == rounds:
            break
        imp_ops.prune_round(model, rate)  # prune p of the remaining weights, then rewind
        broadcast_masks(model)
        imp_ops.rewind(model, state["rewind"])
        train_model = wrap_ddp(model, device)  # new parameters (weight_orig) after pruning
        state["round"] += 1
        state["epoch"] = 0
        opt, sched = _optimizer(model, cfg, cfg.epochs * len(train_loader))
        progress("round", round=state["round"], rounds=rounds, sparsity=sparsity_report(model)["sparsity"])

    result = evaluate(model, test_loader, device, cfg.energy_model)
    report = result.pop("energy")
    storage = model_storage(model, method.weights)
    ann_pj = _ann_reference_pj(cfg, bundle, test_loader)
    pj = report.energy_pj
    metrics = {
        **{k: v for k, v in result.items()},
        "sparsity": sparsity_report(model)["sparsity"],
        "train_seconds": state["elapsed"],
        "time_to_ticket_s": state["elapsed"],
        "images_per_s": state["images"] / state["elapsed"] if state["elapsed"] > 0 else None,
        "epochs_run": len(state["history"]),
        "imp_rounds": rounds,
        "history": state["history"],
        **storage,
        "energy_model": report.model,
        "energy_pj": pj,
        "macs": report.macs,
        "acs": report.acs,
        "energy_ann_pj": ann_pj,
        "energy_x_ann": ann_pj / pj if pj > 0 else None,
        "energy_x_snn": snn_energy_pj / pj if snn_energy_pj and pj > 0 else None,
        "energy_by_model": {name: energy_under(report, name).energy_pj for name in plugins.names("energy_models")},
        "energy_layers": [
            {k: getattr(layer, k) for k in ("name", "op_kind", "macs", "acs", "weight_density", "firing_rate", "energy_pj")}
            for layer in report.layers
        ],
        "spiking": spiking,
        "mask_digest": mask_digest(model),
        "params": sum(p.numel() for p in model.parameters()),
    }
    for key, value in list(metrics.items()):
        if isinstance(value, float) and not math.isfinite(value):
            metrics[key] = None
    progress("done", top1=metrics["top1"])
    if checkpoint:
        save_checkpoint(checkpoint, {
            "config": cfg.to_dict(), "model": model.state_dict(), "masks": _masks(model),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **state, "finished": True})
    return metrics


def load_trained(checkpoint: str | Path, data_dir: str | None = None):
    """(config, data bundle, model) rebuilt from a trainer checkpoint, weights and masks loaded."""
    ck = load_checkpoint(checkpoint)
    cfg = CellConfig.from_dict(ck["config"])
    bundle = load_dataset(cfg.dataset, data_dir, limit_train=cfg.limit_train, limit_test=cfg.limit_test)
    model = build_cell_model(cfg, bundle)
    _apply_masks(model, ck.get("masks") or {})
    model.load_state_dict(ck["model"])
    return cfg, bundle, model


def _ann_reference_pj(cfg: CellConfig, bundle, test_loader) -> float:
    """Energy of the dense ANN of the same arch/width/data (MACs do not depend on training)."""
    from dataclasses import replace

    ann_cfg = replace(cfg, method="ann").normalized()
    model = build_cell_model(ann_cfg, bundle)
    x, _ = next(iter(test_loader))
    return count_energy(model, [x[:8]], cfg.energy_model).energy_pj
