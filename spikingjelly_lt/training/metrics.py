"""Measurements of a trained cell: firing rates, storage bits, environment."""

from __future__ import annotations

import os
import platform
import subprocess
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .._sj import base
from ..energy.storage import model_storage  # one storage description (energy/storage.py)

__all__ = ["FiringRateMonitor", "model_storage", "environment", "collapse", "CHANCE_MARGIN", "MIN_FIRING"]

CHANCE_MARGIN = 0.02  # validation accuracy within 2 points of chance: collapsed (docs/protocol.md §4)
MIN_FIRING = 0.01  # a spiking layer under 1 % firing: collapsed


def _spiking_nodes(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, base.MemoryModule) and hasattr(m, "v_threshold")
    ]


class FiringRateMonitor:
    """Mean output firing rate of every spiking neuron layer over the passes inside it."""

    def __init__(self, model: nn.Module):
        self.nodes = _spiking_nodes(model)
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._handles: list = []

    def __enter__(self) -> FiringRateMonitor:
        for name, module in self.nodes:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, args, out):
            s = out.detach().sum(dtype=torch.float32).double()  # a bf16 sum would round the count
            self._sums[name] = self._sums[name] + s if name in self._sums else s
            self._counts[name] = self._counts.get(name, 0) + out.numel()

        return hook

    def rates(self) -> dict[str, float]:
        return {n: float(self._sums[n]) / self._counts[n] for n in self._sums}

    def mean_rate(self) -> float | None:
        total = sum(self._counts.values())
        return float(sum(float(s) for s in self._sums.values())) / total if total else None


def collapse(val_acc: float | None, firing_rates: dict[str, float] | None, num_classes: int) -> dict:
    """``{"collapsed": bool | None, "collapse_reason": str | None}`` of a trained cell (docs/protocol.md §4).

    Collapsed: validation accuracy within ``CHANCE_MARGIN`` of chance (1 / classes), or a
    spiking layer firing under ``MIN_FIRING``. ``collapsed`` is None when nothing was measured.
    A collapsed cell is no data point for energy savings.
    """
    reasons = []
    chance = 1.0 / max(int(num_classes), 1)
    if val_acc is not None and val_acc <= chance + CHANCE_MARGIN:
        reasons.append(f"validation accuracy {100 * val_acc:.1f}% is within {100 * CHANCE_MARGIN:g} points "
                       f"of chance ({100 * chance:.1f}%)")
    silent = sorted((r, n) for n, r in (firing_rates or {}).items() if r < MIN_FIRING)
    if silent:
        names = ", ".join(f"{n} {r:.3f}" for r, n in silent[:3]) + (" ..." if len(silent) > 3 else "")
        reasons.append(f"{len(silent)} spiking layer(s) under {100 * MIN_FIRING:g}% firing ({names})")
    if val_acc is None and firing_rates is None:
        return {"collapsed": None, "collapse_reason": None}
    return {"collapsed": bool(reasons), "collapse_reason": "; ".join(reasons) or None}


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict:
    """Versions, device and commit recorded with every result."""
    from .._versions import dist_version as version
    from ..hardware import cpu_info

    cpu = cpu_info()
    return {
        "torch": torch.__version__,
        "spikingjelly": version("spikingjelly"),
        "spikingjelly_lt": version("spikingjelly-lt"),
        "python": platform.python_version(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "cpu": cpu.model,  # speed figures hold for one CPU family only
        "cpu_flags": list(cpu.flags),
        "threads": torch.get_num_threads(),
        "host_cpus": os.cpu_count(),
        "commit": _commit(),
    }


@contextmanager
def evaluating(model: nn.Module):
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)
