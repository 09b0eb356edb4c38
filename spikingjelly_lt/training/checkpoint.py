"""Atomic checkpoints (write to a temp file, then rename) loaded with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UsageError

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "spikingjelly-lt-checkpoint"
VERSION = 2  # 2: pruner state and every mask in the model state (parametrizations)


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` atomically: a crash leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:  # a failed save or rename leaves the previous checkpoint, and no temp file
        if tmp.exists():
            tmp.unlink()


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
