"""Run a list of cells against a results store: resume, failures, checkpoints.

A cell already ``done`` in the store is skipped (``rerun`` forces it). Each cell is
committed on its own, so a killed matrix keeps every finished cell; the interrupted
cell (marked ``interrupted`` on Ctrl-C / SIGTERM) continues from its last epoch checkpoint. A failing cell is recorded as
``failed`` with its reason and the matrix goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .methods import Resolved
from .results.store import ResultStore
from .training.distributed import dist_info, is_main
from .training.metrics import environment
from .training.trainer import CellFailed, run_cell

__all__ = ["run_matrix", "resolve_device", "CellOutcome"]

log = logging.getLogger("spikingjelly_lt")


@dataclass
class CellOutcome:
    cell: Resolved
    hash: str
    status: str  # done | failed | skipped
    metrics: dict | None = None
    reason: str | None = None


def resolve_device(name: str) -> torch.device:
    from .errors import UsageError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist_info().local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available; valid: auto, cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None


def _snn_energy(store: ResultStore, cell: Resolved) -> float | None:
    """The done dense SNN of this cell (``cell.baseline("snn")``), priced under its cost model."""
    h = cell.baseline_hashes().get("snn")
    row = store.get(h) if h else None
    if not row or row["status"] != "done":
        return None
    return (row["metrics"].get("energy_by_model") or {}).get(cell.cell.energy_model)


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


def run_matrix(
    cells: list[Resolved],
    store: ResultStore,
    *,
    data_dir: str | None = None,
    device: torch.device,
    checkpoint_dir: Path,
    rerun: bool = False,
    progress=None,
    env_extra: dict | None = None,
) -> list[CellOutcome]:
    """Run every cell not yet done; returns one outcome per cell, in order."""
    outcomes = []
    env = {**environment(device), "world_size": dist_info().world, **(env_extra or {})}
    main = is_main()  # under torchrun only rank 0 writes results
    for index, cell in enumerate(cells):
        config = cell.cell.to_dict()
        h = cell.hash
        if not rerun and store.is_done(h):
            row = store.get(h)
            outcomes.append(CellOutcome(cell, h, "skipped", row["metrics"]))
            if progress:
                progress("skip", index=index, total=len(cells), config=config)
            continue
        if main:
            store.begin(cell.key(), env, cell.describe())
        ckpt = checkpoint_dir / f"{h}.pt"
        if rerun and main and ckpt.exists():
            ckpt.unlink()
        try:
            metrics = run_cell(
                cell,
                data_dir=data_dir,
                device=device,
                checkpoint=ckpt,
                snn_energy_pj=_snn_energy(store, cell),
                progress=(lambda event, _i=index, **info: progress(event, index=_i, total=len(cells), **info)) if progress else None,
            )
        except CellFailed as exc:
            log.error("cell %s (%s) failed: %s", cell.method.name, h, exc)
            if main:
                store.fail(h, str(exc))
            outcomes.append(CellOutcome(cell, h, "failed", reason=str(exc)))
            continue
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI's handler
            if main:
                _mark_interrupted(store, h)
            raise
        if main:
            store.finish(h, metrics)
        if progress:
            progress("measured", index=index, total=len(cells), config=config, metrics=metrics)
        outcomes.append(CellOutcome(cell, h, "done", metrics))
    return outcomes
