"""Run a list of cells against a results store: resume, failures, checkpoints.

A cell already ``done`` in the store is skipped (``rerun`` forces it). Each cell is
committed on its own, so a killed matrix keeps every finished cell; the interrupted
cell (marked ``interrupted`` on Ctrl-C / SIGTERM) continues from its last epoch checkpoint. A failing cell is recorded as
``failed`` with its reason and the matrix goes on.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .methods import Resolved
from .results.store import ResultStore
from .training.distributed import dist_info
from .training.metrics import environment
from .training.trainer import CellFailed, run_cell

__all__ = ["run_matrix", "resolve_device", "CellOutcome"]

log = logging.getLogger("spikingjelly_lt")


@dataclass
class CellOutcome:
    resolved: Resolved
    hash: str
    status: str  # done | failed | skipped
    metrics: dict | None = None
    reason: str | None = None


def resolve_device(name: str) -> torch.device:
    """The device a ``--device`` value names, with an index on CUDA.

    ``auto``: this rank's GPU (``cuda:LOCAL_RANK``) when CUDA is available, else the CPU.
    ``cuda``: the same without the fallback. ``cuda:N``: that GPU; under torchrun with more
    than one process a fixed index would put every rank on one GPU, so it is refused.
    """
    from .errors import UsageError

    info = dist_info()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank)
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available; valid: auto, cpu")
        if dev.index is None:
            return torch.device("cuda", info.local_rank)
        if info.enabled:
            raise UsageError(f"device {name!r} under torchrun ({info.world} processes) would put every rank on "
                             f"GPU {dev.index}; use --device cuda or auto (each rank takes cuda:LOCAL_RANK)")
        if dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                             f"valid: cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif dev.type != "cpu":
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return dev


def cell_failure_reason(resolved: Resolved, exc: BaseException) -> str:
    """One line saying what went wrong in ``resolved`` and what to try."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    c = resolved.cell
    name = f"{c.method} seed {c.seed} sparsity {c.sparsity:g}"
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in first.lower():
        return (f"{name}: out of memory ({first}); try a smaller recipe.batch_size (now {c.recipe.batch_size}), "
                f"model.timesteps (now {c.model.timesteps}) or model.width, or recipe.precision=bf16")
    return f"{name}: {type(exc).__name__}: {first}"


def _snn_energy(store: ResultStore, resolved: Resolved) -> float | None:
    """The done dense SNN of this cell (``resolved.baseline("snn")``), priced under its cost model."""
    from .energy.savings import stored_energy_pj

    h = resolved.baseline_hashes().get("snn")
    row = store.get(h) if h else None
    if not row or row["status"] != "done":
        return None
    return stored_energy_pj(row["metrics"], resolved.cell.energy_model)


def _mark_interrupted(store: ResultStore, h: str) -> None:
    """Record the interruption; a second Ctrl-C during this write must not lose the first."""
    import signal

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        store.interrupt(h)
        log.debug("cell %s marked interrupted", h)
    except Exception as exc:  # noqa: BLE001 - the row stays 'running', which resumes the same way
        log.warning("could not mark cell %s interrupted (%s); it stays 'running' and resumes", h, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _decide(store: ResultStore | None, resolved: Resolved, env: dict, rerun: bool, ckpt: Path) -> str:
    """Rank 0's decision for one cell: ``run`` (claimed for this process), ``done`` or ``claimed``
    (another live process runs it). On ``--rerun`` the old checkpoint goes before anyone resumes it."""
    if store is None:
        return "run"
    if not rerun and store.is_done(resolved.hash):
        return "done"
    if store.claim(resolved.key(), env, resolved.describe(), force=rerun) is None:
        return "done" if store.is_done(resolved.hash) else "claimed"
    if rerun and ckpt.exists():
        ckpt.unlink()
    return "run"


def run_matrix(
    cells: list[Resolved],
    store: ResultStore | None,
    *,
    data_dir: str | None = None,
    device: torch.device,
    checkpoint_dir: Path,
    rerun: bool = False,
    progress=None,
    env_extra: dict | None = None,
) -> list[CellOutcome]:
    """Run every cell not yet done; returns one outcome per cell, in order.

    Each cell is claimed in the store before it runs (one owner per cell: a second process
    on the same file skips a cell another live process is running). Under torchrun only
    rank 0 has a store (``store`` is None elsewhere): it decides which cells run and the
    other ranks follow its decision, so no rank reads the file or a stale answer.
    """
    from .training.distributed import broadcast_object, init_distributed, shutdown_distributed
    from .training.precision import precision_for

    outcomes = []
    info = init_distributed(device)  # before any decision: the ranks agree on each one
    env = {**environment(device), "world_size": info.world, **(env_extra or {})}
    main = info.rank == 0  # under torchrun only rank 0 writes results
    if main and store is None:
        raise ValueError("run_matrix needs a results store on rank 0")
    store = store if main else None
    if main and checkpoint_dir.is_dir():
        from .training.checkpoint import remove_stale_temps

        if n := remove_stale_temps(checkpoint_dir):
            log.info("removed %d temp file(s) of checkpoint saves killed mid-write in %s", n, checkpoint_dir)
    try:
        for index, resolved in enumerate(cells):
            h = resolved.hash
            ckpt = checkpoint_dir / f"{h}.pt"
            cell_env = {**env, "compute": precision_for(resolved.cell.recipe.precision, device).describe()}
            decision = broadcast_object(_decide(store, resolved, cell_env, rerun, ckpt))
            if decision != "run":
                row = store.get(h) if store is not None else None
                outcomes.append(CellOutcome(resolved, h, "skipped", row["metrics"] if row else None,
                                            reason=None if decision == "done" else "running in another process"))
                if progress:
                    progress("skip", index=index, total=len(cells), cell=resolved.cell.to_dict(), why=decision)
                continue
            outcomes.append(_run_one(resolved, store, index, len(cells), data_dir=data_dir, device=device, ckpt=ckpt,
                                     progress=progress))
    finally:
        shutdown_distributed()
    return outcomes


def _run_one(resolved: Resolved, store: ResultStore | None, index: int, total: int, *, data_dir, device, ckpt: Path,
             progress) -> CellOutcome:
    """Train and record one claimed cell: ``done``, or ``failed`` with a one-line reason."""
    from .errors import UsageError

    h = resolved.hash
    keep = store.keep_alive(h) if store is not None else contextlib.nullcontext()
    try:
        with keep:
            metrics = run_cell(
                resolved,
                data_dir=data_dir,
                device=device,
                checkpoint=ckpt,
                snn_energy_pj=_snn_energy(store, resolved) if store is not None else None,
                progress=(lambda event, **info: progress(event, index=index, total=total, **info)) if progress else None,
            )
    except (CellFailed, RuntimeError) as exc:  # RuntimeError: a torch error (CUDA OOM included)
        reason = str(exc) if isinstance(exc, CellFailed) else cell_failure_reason(resolved, exc)
        log.error("cell %s (%s) failed: %s", resolved.method.name, h, reason)
        if not isinstance(exc, CellFailed):
            log.debug("cell %s failure", h, exc_info=exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next cell starts without the failed one's cached blocks
        if store is not None:
            store.fail(h, reason)
        return CellOutcome(resolved, h, "failed", reason=reason)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI's handler
        if store is not None:
            _mark_interrupted(store, h)
        raise
    if store is not None:
        try:
            store.finish(h, metrics)
        except UsageError as exc:  # disk full, read-only file: the trained cell is in its checkpoint
            raise UsageError(f"{exc}; cell {h} ({resolved.method.name}) finished training but could not be recorded: "
                             f"its checkpoint {ckpt} is kept, and rerunning the same command records it "
                             "without training again") from None
    if progress:
        progress("measured", index=index, total=total, cell=resolved.cell.to_dict(), metrics=metrics)
    return CellOutcome(resolved, h, "done", metrics)
