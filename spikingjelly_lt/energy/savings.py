"""The savings ``x ANN`` and ``x SNN``: how many times less energy a cell needs than its dense baseline.

One rule for every place that shows one: the trainer's metrics, the dense SNN's energy the
runner hands the trainer, ``sjlt energy`` (through :func:`~spikingjelly_lt.energy.counter.energy_ratio`,
which prices both reports under one cost model first) and the report's fill-in after a merge
of shards.
"""

from __future__ import annotations

from typing import Any

__all__ = ["saving", "stored_energy_pj"]


def saving(baseline_pj: float | None, energy_pj: float | None) -> float | None:
    """``E_base / E`` (the paper's "8.92x saving vs ANN" is 8.92); None without a baseline energy
    (missing or 0) or without a positive ``E``."""
    if not baseline_pj or energy_pj is None or not energy_pj > 0:
        return None
    return baseline_pj / energy_pj


def stored_energy_pj(metrics: dict[str, Any] | None, energy_model: str | None) -> float | None:
    """A stored cell's energy per image (its metrics dict) under ``energy_model``: its
    ``energy_by_model`` entry, else its own ``energy_pj`` (rows written before ``energy_by_model``)."""
    m = metrics or {}
    return (m.get("energy_by_model") or {}).get(energy_model) or m.get("energy_pj")
