"""Atomic checkpoints (write to a temp file, then rename) loaded with ``weights_only=True``,
and the one way back from a trainer checkpoint to its model (:func:`load_trained`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..errors import UsageError
from .._proc import pid_alive

if TYPE_CHECKING:
    from torch import nn

    from ..methods import Resolved

__all__ = ["save_checkpoint", "load_checkpoint", "remove_stale_temps", "load_trained", "Trained", "FORMAT"]

FORMAT = "spikingjelly-lt-checkpoint"
VERSION = 2  # 2: pruner state and every mask in the model state (parametrizations)


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` atomically and durably: a crash (or power loss) leaves the old file or
    the new one, never half. The temp file is fsynced before the rename, the folder after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as exc:  # disk full (torch: "unexpected pos"), read-only folder
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        raise UsageError(f"cannot write checkpoint {path} ({why}); the previous one is kept: "
                         "free space in (or make writable) its folder and rerun to resume") from None
    finally:  # a failed save or rename leaves the previous checkpoint, and no temp file
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | Path) -> int:
    """Delete temp files of checkpoint saves whose process is gone (a SIGKILL mid-save); their count."""
    removed = 0
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely; anything else is one clear error (the file is left alone)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UsageError(
            f"checkpoint {path} is corrupt or not a spikingjelly-lt checkpoint "
            f"({type(exc).__name__}); it was left untouched: move it away to start the cell over"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"checkpoint {path} is not a spikingjelly-lt checkpoint; it was left untouched")
    if payload.get("version") != VERSION:
        raise UsageError(f"checkpoint {path} has version {payload.get('version')!r}; this build reads {VERSION}")
    return payload


class Trained(NamedTuple):
    """A trained cell rebuilt from its checkpoint (unpacks as ``resolved, bundle, model``)."""

    resolved: Resolved
    bundle: Any  # the cell's DataBundle, opened as the trainer opened it
    model: nn.Module


def load_trained(checkpoint: str | Path, data_dir: str | None = None) -> Trained:
    """The one checkpoint -> model loader (``sjlt energy``, ticket export, deploy).

    The checkpoint's cell is resolved and its data set opened as the trainer opened it (limits,
    validation split, resize); the model is rebuilt from the cell (without disturbing the
    caller's RNG), its weights and masks loaded, and put in eval mode. Anything that does not
    fit is one :class:`UsageError`.
    """
    from ..build import DataShape, build_model
    from ..cell import Cell
    from ..data import load_dataset
    from ..methods import resolve

    ck = load_checkpoint(checkpoint)
    fields = ck.get("cell") if isinstance(ck.get("cell"), dict) else ck.get("key")
    if not isinstance(fields, dict) or not isinstance(ck.get("model"), dict):
        raise UsageError(f"checkpoint {checkpoint} has no cell/model; not written by the trainer")
    cell = Cell.from_dict(fields)
    try:
        bundle = load_dataset(cell.data.dataset, data_dir, limit_train=cell.data.limit_train,
                              limit_test=cell.data.limit_test, val_fraction=cell.recipe.val_fraction,
                              resize=cell.data.resize)
    except UsageError as exc:
        raise UsageError(f"checkpoint {checkpoint} is a {cell.data.dataset} model and its data set is needed "
                         f"for its shape: {exc}") from None
    resolved = resolve(cell)
    with torch.random.fork_rng(devices=[]):
        model = build_model(resolved, DataShape.of(bundle))
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UsageError(f"checkpoint {checkpoint} does not match the {cell.model.arch}/{cell.method} model of "
                         f"its cell: {first}") from None
    return Trained(resolved, bundle, model.eval())
