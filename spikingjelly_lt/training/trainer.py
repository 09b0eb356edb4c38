"""Train and measure one benchmark cell (docs/design.md §2.2, §2.4, §2.7).

Flow: data -> model (the resolved cell) -> train (the pruner's lifecycle: rounds,
epochs, steps; the trainer knows no pruner by name) -> measure (top-1, achieved
sparsity, firing rates, energy, storage, speed). Seeded and deterministic on CPU; an
atomic checkpoint at each epoch end (model, optimizers, schedules, pruner state) lets
an interrupted cell continue where it stopped. A non-finite loss raises :class:`CellFailed`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import plugins
from .._sj import reset_net
from ..build import DataShape, build_model
from ..cell import Cell
from ..data import load_dataset, make_loader
from ..errors import UsageError
from ..energy.counter import EnergyCounter, count_energy
from ..energy.report import energy_under
from ..energy.savings import saving
from ..methods import Resolved, resolve
from ..pruners.base import ParamGroup, TrainContext
from ..pruners.common import effective_weight, prunable_layers, sparsity_report
from .checkpoint import load_checkpoint, load_trained, save_checkpoint  # load_trained: re-exported
from .distributed import (all_reduce_max, broadcast_buffers, broadcast_object, dist_info, init_distributed,
                          make_sampler, wrap_ddp)
from .execpath import resolve_exec_path
from .memory import check_fits
from .metrics import FiringRateMonitor, collapse, evaluating, model_storage
from .precision import Precision, precision_for

__all__ = ["run_cell", "CellFailed", "Progress", "evaluate", "mask_digest", "load_trained", "Optimizers",
           "train_step", "train_epoch"]

log = logging.getLogger("spikingjelly_lt")

Progress = Callable[..., None]  # progress(event, **info); events: start (cell=the cell's dict), epoch, step, round, done


class CellFailed(RuntimeError):
    """The cell could not finish (e.g. a non-finite loss); ``str()`` is the reason."""


def _noop(event: str, **info) -> None:
    pass


class Optimizers:
    """One optimizer + cosine schedule per optimizer kind of the pruner's parameter groups."""

    KINDS = {
        "sgd": lambda groups: torch.optim.SGD(groups, momentum=0.9),
        "adam": lambda groups: torch.optim.Adam(groups),
    }

    def __init__(self, groups: list[ParamGroup], total_steps: int, start_step: int = 0) -> None:
        by_kind: dict[str, list[dict]] = {}
        for g in groups:
            if g.optimizer not in self.KINDS:
                raise CellFailed(f"param group {g.name!r} asks for optimizer {g.optimizer!r}; valid: {', '.join(self.KINDS)}")
            if g.params:
                by_kind.setdefault(g.optimizer, []).append(
                    {"params": g.params, "lr": g.lr, "weight_decay": g.weight_decay})
        self.opts = [self.KINDS[kind](gs) for kind, gs in by_kind.items()]
        self.scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=max(1, total_steps)) for o in self.opts]
        for _ in range(start_step):  # Frankle-style rewinding: resume the schedule at step k
            for s in self.scheds:
                s.step()

    def zero_grad(self) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=True)

    def step(self, scaler=None) -> None:
        """One update of every optimizer (through ``scaler`` under fp16) and its schedule."""
        for o, s in zip(self.opts, self.scheds):
            if scaler is None:
                o.step()
            else:
                scaler.step(o)
            s.step()
        if scaler is not None:
            scaler.update()

    def lr(self) -> list[float]:
        return [s.get_last_lr()[0] for s in self.scheds]

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.opts], "schedulers": [s.state_dict() for s in self.scheds]}

    def load_state_dict(self, state: dict) -> None:
        for o, sd in zip(self.opts, state["optimizers"]):
            o.load_state_dict(sd)
        for s, sd in zip(self.scheds, state["schedulers"]):
            s.load_state_dict(sd)


def evaluate(model: nn.Module, loader, device: torch.device, energy_model: str | None = None,
             precision: Precision | None = None):
    """Top-1, neuron firing rates and (optionally) energy counts in one eval pass.

    Parametrized weights (masks, binary weights) are computed once for the whole pass.
    ``precision``: the run's precision and layout (default: fp32, tensors as they come).
    """
    precision = precision or precision_for("fp32", device, "contiguous")
    spiking = getattr(model, "timesteps", None) is not None
    correct, total = torch.zeros((), dtype=torch.long, device=device), 0  # read once, after the pass
    counter = EnergyCounter(model, energy_model) if energy_model else None
    monitor = FiringRateMonitor(model)
    start = time.perf_counter()
    with evaluating(model), monitor, parametrize.cached():
        if counter:
            counter.__enter__()
        try:
            for x, y in loader:
                x, y = precision.input(x), y.to(device, non_blocking=True)
                with precision.autocast():
                    out = model(x)
                if spiking:
                    reset_net(model)
                correct += (out.argmax(1) == y).sum()
                total += y.numel()
        finally:
            if counter:
                counter.__exit__(None, None, None)
    seconds = time.perf_counter() - start
    return {
        "top1": int(correct) / max(total, 1),
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
        h.update(name.encode())
        h.update((effective_weight(module) != 0).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _batches(loader, device: torch.device) -> Callable[[int], Iterator]:
    """``take(n)``: the first ``n`` images of the training set in a fixed order, in batches."""

    def take(n: int):
        left = n
        for x, y in loader:
            if left <= 0:
                break
            yield x[:left].to(device, non_blocking=True), y[:left].to(device, non_blocking=True)
            left -= y.shape[0]

    return take


NONFINITE_CHECK_EVERY = 50  # steps between loss checks on an accelerator (each check is a host sync)


def train_step(train_model: nn.Module, x: torch.Tensor, y: torch.Tensor, opts: Optimizers, prec: Precision,
               scaler=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch already on the device; returns ``(loss, logits)``, both
    detached and left on the device (nothing is read back to the host here)."""
    with prec.autocast():
        out = train_model(x)
    loss = nn.functional.cross_entropy(out.float(), y)
    opts.zero_grad()
    (loss if scaler is None else scaler.scale(loss)).backward()
    opts.step(scaler)
    return loss.detach(), out.detach()


def train_epoch(train_model: nn.Module, model: nn.Module, loader, opts: Optimizers, prec: Precision, pruner,
                ctx: TrainContext, *, spiking: bool, scaler=None, progress: Progress = _noop,
                where: str = "") -> dict:
    """One epoch of :func:`train_step` with the pruner's per-step hook; returns the epoch's sums.

    Loss and accuracy are summed on the device and read once, at the end. A non-finite loss
    raises :class:`CellFailed`: checked every step on a single-process CPU run (where it
    costs nothing), else every :data:`NONFINITE_CHECK_EVERY` steps and at the end, agreed
    across ranks, so that no rank is left waiting in an all-reduce.
    """
    device = prec.device
    every = 1 if device.type == "cpu" and not dist_info().enabled else NONFINITE_CHECK_EVERY
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    bad = torch.zeros((), dtype=torch.long, device=device)
    seen, checked = 0, 0
    for step, (x, y) in enumerate(loader):
        x, y = prec.input(x), y.to(device, non_blocking=True)
        loss, out = train_step(train_model, x, y, opts, prec, scaler)
        bad += ~torch.isfinite(loss)
        if (step + 1) % every == 0:
            _check_finite(bad, loss, where, checked + 1, step + 1)
            checked = step + 1
        if spiking:
            reset_net(model)
        ctx.step += 1
        pruner.on_step(model, ctx)
        loss_sum += loss * y.numel()
        correct += (out.argmax(1) == y).sum()
        seen += y.numel()
        progress("step", step=step + 1, steps=len(loader))
    if checked < seen and seen:
        _check_finite(bad, loss, where, checked + 1, len(loader))
    return {"loss_sum": float(loss_sum), "correct": int(correct), "seen": seen}


def _check_finite(bad: torch.Tensor, loss: torch.Tensor, where: str, first: int, last: int) -> None:
    """Raise :class:`CellFailed` if any step since the last check (on any rank) had a non-finite loss."""
    flag = bad.clone()
    all_reduce_max(flag)
    if int(flag):
        steps = f"step {last}" if first == last else f"steps {first}-{last}"
        raise CellFailed(f"non-finite loss ({float(loss)} at the last step) at {where} {steps}; "
                         "try a lower recipe.lr / recipe.score_lr, or recipe.precision=fp32")


def run_cell(
    cell: Resolved | Cell,
    *,
    data_dir: str | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    progress: Progress | None = None,
    snn_energy_pj: float | None = None,
) -> dict:
    """Train and measure one cell; returns its metrics dict (docs/design.md §2.4).

    ``checkpoint``: where to keep the epoch-end checkpoint; if it exists for the same
    cell, training continues from it. ``snn_energy_pj``: the dense SNN's energy for the
    same setting (same cost model), to report the saving ``x SNN``.

    Under torchrun each rank trains on ``batch_size / world`` images of every global
    batch; only rank 0 reports progress and writes the checkpoint.
    """
    resolved = cell if isinstance(cell, Resolved) else resolve(cell)
    run = _CellRun(resolved, data_dir=data_dir, device=torch.device(device), checkpoint=checkpoint,
                   progress=progress)  # data -> model (resumed from the checkpoint if there is one)
    run.progress("start", cell=run.cell.to_dict(), rounds=run.rounds, epochs=run.recipe.epochs, steps=run.steps,
                 done_epochs=run.state["round"] * run.recipe.epochs + run.state["epoch"])  # > 0: resumed
    while run.state["round"] < run.rounds:  # train: round by round, the last one trains the ticket
        run.train_round()
        if run.state["round"] == run.rounds - 1:
            break
        run.next_round()
    metrics = run.measure(snn_energy_pj)  # measure: test split, once
    run.progress("done", top1=metrics["top1"])
    run.save(finished=True)
    return metrics


class _CellRun:
    """One cell's training run: its data, model, optimizers and progress (``state``), the
    steps :func:`run_cell` takes in order, and the epoch-end checkpoint."""

    def __init__(self, resolved: Resolved, *, data_dir: str | None, device: torch.device,
                 checkpoint: str | Path | None, progress: Progress | None) -> None:
        self.resolved, self.cell, self.recipe, self.pruner = resolved, resolved.cell, resolved.cell.recipe, resolved.pruner
        self.device = device
        precision_for(self.recipe.precision, device).apply()  # checked before any work; TF32 off for fp32 on CUDA
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.ddp = init_distributed(device)
        self.progress = (progress or _noop) if self.ddp.rank == 0 else _noop
        if self.recipe.batch_size % self.ddp.world:
            raise CellFailed(f"batch size {self.recipe.batch_size} is not divisible by the {self.ddp.world} processes")
        self._setup_data(data_dir)
        self._setup_model()
        ck = self._read_checkpoint(checkpoint)
        self._setup_path(ck)
        self.rounds = self.pruner.rounds(self.recipe)
        self.state = {"round": 0, "epoch": 0, "elapsed": 0.0, "images": 0, "history": [], "round_start_epoch": 0,
                      "stopped": False, "search_seconds": None}
        self.opts = Optimizers(self.pruner.param_groups(self.model, self.recipe), self.total_steps)
        if ck is not None:
            self._resume(ck)
        self.train_model = wrap_ddp(self.model, device)
        self.checkpoint = checkpoint if self.ddp.rank == 0 else None
        self.ctx = TrainContext(
            cell=self.cell, rounds=self.rounds, steps_per_epoch=self.steps, history=self.state["history"],
            device=device, train_batches=_batches(make_loader(self.bundle, "train", 256, shuffle=False, augment=False,
                                                              device=self.data_device), device),
            val_batches=_batches(self.val_loader, device) if self.val_loader is not None else None)

    def _setup_data(self, data_dir: str | None) -> None:
        """The cell's data set and its train / validation loaders."""
        c, recipe, ddp = self.cell, self.recipe, self.ddp
        self.bundle = bundle = load_dataset(c.data.dataset, data_dir, limit_train=c.data.limit_train,
                                            limit_test=c.data.limit_test, val_fraction=recipe.val_fraction,
                                            resize=c.data.resize)
        # on a GPU the whole (uint8) data set moves there once; batches and augmentation are built there
        self.data_device = data_device = self.device if self.device.type == "cuda" else None
        self.train_loader = make_loader(bundle, "train", recipe.batch_size // ddp.world, seed=c.seed, drop_last=True,
                                        sampler=make_sampler(len(bundle.train_y), c.seed), device=data_device)
        # every in-run choice reads validation; the test split is loaded only after training (docs/protocol.md §1)
        self.val_loader = make_loader(bundle, "val", 256, device=data_device) if bundle.val_y is not None else None
        if len(self.train_loader) == 0:
            raise CellFailed(f"batch size {recipe.batch_size} exceeds the {bundle.train_x.shape[0]} training images")
        self.steps = len(self.train_loader)
        self.total_steps = recipe.epochs * self.steps

    def _setup_model(self) -> None:
        """The resolved cell's model on the device, checked to fit, its native kernels ready."""
        self.model = build_model(self.resolved, DataShape.of(self.bundle)).to(self.device)
        self.step_shape = (self.recipe.batch_size // self.ddp.world, *self.bundle.train_x.shape[1:])
        self.step_bytes, _, refusal = check_fits(self.model, self.step_shape, self.device,
                                                 batch_size=self.recipe.batch_size,
                                                 timesteps=getattr(self.model, "timesteps", None))
        if refusal:
            raise CellFailed(refusal)
        self.kernel_load_s = warm_native_kernels(self.model, self.device)  # outside the timed epochs
        self.key = self.resolved.key()

    def _read_checkpoint(self, checkpoint: str | Path | None) -> dict | None:
        """This cell's checkpoint on this data, or None when there is none yet."""
        if not (checkpoint and Path(checkpoint).exists()):
            return None
        try:
            ck = load_checkpoint(checkpoint)
        except UsageError as exc:  # a truncated or foreign checkpoint fails this cell, not the matrix
            raise CellFailed(str(exc)) from None
        if ck.get("key") != self.key:
            raise CellFailed(f"checkpoint {checkpoint} belongs to another cell; move it away")
        fingerprint = self.bundle.fingerprint
        if ck.get("data_fingerprint", fingerprint) != fingerprint:  # never resume on other data
            raise CellFailed(f"checkpoint {checkpoint} was trained on other data (fingerprint "
                             f"{ck.get('data_fingerprint')}, now {fingerprint}); move it away to start over")
        return ck

    def _setup_path(self, ck: dict | None) -> None:
        """The execution path (layout, LIF kernel, denormals): measured, cached, or the checkpoint's;
        then the precision, on the layout the path chose."""
        path = resolve_exec_path(self.resolved, self.model, self.step_shape, self.device,
                                 resumed=(ck or {}).get("exec_path"))
        self.path = path = broadcast_object(path)  # every rank on rank 0's path
        path.apply(self.model)
        self.prec = precision_for(self.recipe.precision, self.device, path.memory_format)
        self.model = self.prec.model(self.model)
        self.scaler = self.prec.grad_scaler()

    def _resume(self, ck: dict) -> None:
        """Continue from the checkpoint: pruner, model, optimizers and where training stood."""
        self.pruner.load_state_dict(ck["pruner"])
        self.model.load_state_dict(ck["model"])
        if "timesteps" in ck:
            self.model.timesteps = ck["timesteps"]
        self.opts = Optimizers(self.pruner.param_groups(self.model, self.recipe), self.total_steps)
        self.opts.load_state_dict(ck["optimizers"])
        self.state.update({k: ck.get(k, self.state[k]) for k in self.state})
        log.info("resuming %s from round %d epoch %d", self.cell.method, self.state["round"], self.state["epoch"])

    def save(self, **extra) -> None:
        """The epoch-end checkpoint (rank 0 only)."""
        if self.checkpoint:
            save_checkpoint(self.checkpoint, {
                "key": self.key, "cell": self.cell.to_dict(), "exec_path": self.path.to_dict(),
                "model": self.model.state_dict(), "optimizers": self.opts.state_dict(),
                "pruner": self.pruner.state_dict(), "timesteps": getattr(self.model, "timesteps", None),
                "data_fingerprint": self.bundle.fingerprint, **self.state, **extra})

    def train_round(self) -> None:
        """The epochs left in this round (until the pruner stops it early), each validated and saved."""
        state, ctx, model, recipe = self.state, self.ctx, self.model, self.recipe
        ctx.round, ctx.epoch, ctx.step = state["round"], state["epoch"], state["epoch"] * self.steps
        if state["epoch"] == state["round_start_epoch"]:
            self.pruner.on_train_start(model, ctx)
        stop = state["stopped"]  # an early stop survives a resume
        while state["epoch"] < recipe.epochs and not stop:
            epoch = state["epoch"]
            model.train()
            self.train_loader.set_epoch(state["round"] * recipe.epochs + epoch)
            t0 = time.perf_counter()
            sums = train_epoch(self.train_model, model, self.train_loader, self.opts, self.prec, self.pruner, ctx,
                               spiking=self.resolved.spiking, scaler=self.scaler, progress=self.progress,
                               where=f"round {state['round']} epoch {epoch + 1}")
            dt = time.perf_counter() - t0
            seen = sums["seen"]
            state["elapsed"] += dt
            state["images"] += seen * self.ddp.world
            state["epoch"] = ctx.epoch = epoch + 1
            broadcast_buffers(model)  # BN running stats and masks: rank 0's on every rank
            row = {"round": state["round"], "epoch": epoch + 1, "loss": sums["loss_sum"] / seen,
                   "train_acc": sums["correct"] / seen, "images_per_s": seen / dt, "lr": self.opts.lr(),
                   **_validate(model, self.val_loader, self.device, self.prec)}
            state["history"].append(row)
            self.progress("epoch", **row)
            stop = state["stopped"] = bool(self.pruner.on_epoch_end(model, ctx))
            broadcast_buffers(model)
            self.save()

    def next_round(self) -> None:
        """The pruner ends the round (prune, rewind); the next one starts with fresh optimizers."""
        state, steps = self.state, self.steps
        plan = self.pruner.on_round_end(self.model, self.ctx)
        broadcast_buffers(self.model)
        start = min(max(int(plan.start_epoch), 0), self.recipe.epochs)
        state.update(round=state["round"] + 1, epoch=start, round_start_epoch=start, stopped=False)
        if state["round"] == self.rounds - 1:
            state["search_seconds"] = state["elapsed"]  # the ticket is found; the last round trains it
        self.opts = Optimizers(self.pruner.param_groups(self.model, self.recipe), self.total_steps,
                               start_step=start * steps)
        self.train_model = wrap_ddp(self.model, self.device)
        self.progress("round", round=state["round"], rounds=self.rounds - 1,
                      sparsity=sparsity_report(self.model)["sparsity"])
        self.save()

    def measure(self, snn_energy_pj: float | None) -> dict:
        """The metrics of the trained cell: top-1 on the test split (read here, once), validation,
        collapse, energy, storage, speed; non-finite numbers become None."""
        state, model, bundle, device, prec = self.state, self.model, self.bundle, self.device, self.prec
        if self.val_loader is not None and not (state["history"] and "val_firing_rates" in state["history"][-1]):
            state["history"].append({"round": state["round"], "epoch": state["epoch"], "final": True,
                                     **_validate(model, self.val_loader, device, prec)})  # e.g. a run of 0 epochs
        val = _validation_summary(state["history"])
        test_loader = make_loader(bundle, "test", 256, device=self.data_device)
        result = evaluate(model, test_loader, device, self.cell.energy_model, prec)  # test: once, here
        report = result.pop("energy")
        spiking = self.resolved.spiking
        metrics = {
            **result,
            "sparsity": sparsity_report(model)["sparsity"],
            "train_seconds": state["elapsed"],
            "time_to_ticket_s": state["elapsed"],  # every round, the final training of the ticket included
            "search_seconds": state["elapsed"] if state["search_seconds"] is None else state["search_seconds"],
            "images_per_s": state["images"] / state["elapsed"] if state["elapsed"] > 0 else None,
            "epochs_run": len(state["history"]),
            "rounds": self.rounds,
            "history": [{k: v for k, v in h.items() if k != "val_firing_rates"} for h in state["history"]],
            **val,
            "num_classes": bundle.num_classes,
            "test_images": len(bundle.test_y),
            **collapse(val.get("val_top1"), val.get("val_firing_rates") if spiking else None, bundle.num_classes),
            "pruner": self.pruner.describe(),
            **model_storage(model, self.resolved.method.weights),
            **_energy_metrics(report, _ann_reference_pj(self.resolved, bundle, test_loader), snn_energy_pj),
            "spiking": spiking,
            "kernel_load_s": self.kernel_load_s,
            "exec_path": self.path.to_dict(),
            "tune_seconds": self.path.tune_seconds,
            "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
            "step_memory_estimate_bytes": self.step_bytes,
            "compute": prec.describe(),
            "mask_digest": mask_digest(model),
            "data_fingerprint": bundle.fingerprint,
            "params": sum(p.numel() for p in model.parameters()),
        }
        for k, value in list(metrics.items()):
            if isinstance(value, float) and not math.isfinite(value):
                metrics[k] = None
        return metrics


def _energy_metrics(report, ann_pj: float, snn_energy_pj: float | None) -> dict:
    """The energy entries of a cell's metrics: its report under its cost model and every other, per
    layer, and the savings against the dense ANN (``ann_pj``) and SNN (``snn_energy_pj``)."""
    pj = report.energy_pj
    return {
        "energy_model": report.model,
        "energy_pj": pj,
        "macs": report.macs,
        "acs": report.acs,
        "energy_ann_pj": ann_pj,
        "energy_x_ann": saving(ann_pj, pj),
        "energy_x_snn": saving(snn_energy_pj, pj),
        "energy_by_model": {name: energy_under(report, name).energy_pj for name in plugins.names("energy_models")},
        "energy_rules": report.rules,
        "energy_options": dict(report.options),
        "neuron_updates": report.neuron_updates,
        "energy_neuron_pj": report.energy_neuron_pj,
        "energy_membrane_pj": report.energy_membrane_pj,
        "energy_layers": [
            {k: getattr(layer, k) for k in ("name", "op_kind", "input_kind", "rule", "macs", "acs", "weight_density",
                                            "firing_rate", "energy_pj")}
            for layer in report.layers
        ],
    }


def warm_native_kernels(model: nn.Module, device: torch.device) -> float:
    """Build or load the native kernels ``model`` will call, before any timed step; the seconds it took."""
    from ..neuron.fast_lif import FastLIFNode, _native_kernel

    if device.type != "cpu" or not any(isinstance(m, FastLIFNode) and m.native for m in model.modules()):
        return 0.0
    t0 = time.perf_counter()
    _native_kernel()
    return time.perf_counter() - t0


def _validate(model: nn.Module, loader, device: torch.device, precision: Precision) -> dict:
    """Validation accuracy, mean and per-layer firing rate of one epoch's model (nothing without a split)."""
    if loader is None:
        return {}
    v = evaluate(model, loader, device, precision=precision)
    return {"val_acc": v["top1"], "firing_rate": v["mean_firing_rate"], "val_firing_rates": v["firing_rates"]}


def _validation_summary(history: list[dict]) -> dict:
    """The last validation measurement, and the best epoch by validation accuracy (informative only:
    the reported model is always the last one)."""
    rows = [h for h in history if h.get("val_acc") is not None]
    if not rows:
        return {"val_top1": None, "val_firing_rates": None, "best_val_acc": None, "best_val_epoch": None}
    best = max(range(len(rows)), key=lambda i: (rows[i]["val_acc"], -i))
    return {"val_top1": rows[-1]["val_acc"], "val_firing_rates": rows[-1].get("val_firing_rates"),
            "best_val_acc": rows[best]["val_acc"], "best_val_epoch": best + 1}


def _ann_reference_pj(resolved: Resolved, bundle, test_loader) -> float:
    """Energy of the dense ANN of the same setting (MACs do not depend on training)."""
    model = build_model(resolved.baseline("ann"), DataShape.of(bundle))
    x, _ = next(iter(test_loader))
    return count_energy(model, [x[:8].cpu()], resolved.cell.energy_model).energy_pj  # counted on the CPU
