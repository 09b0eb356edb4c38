"""Expand a benchmark request into cells, order them, and split them into shards."""

from __future__ import annotations

from dataclasses import replace

from .errors import UsageError
from .methods import get_method
from .results.store import config_hash
from .training.config import CellConfig

__all__ = ["expand", "shard", "parse_shard"]

# Baselines first: x SNN needs the dense SNN's energy before the other spiking cells.
_FIRST = ("snn", "ann")


def expand(base: CellConfig, methods, sparsities, seeds) -> list[CellConfig]:
    """Every (method, sparsity, seed) cell, normalized and deduplicated, baselines first."""
    cells: dict[str, CellConfig] = {}
    for seed in seeds:
        for method in sorted(methods, key=lambda m: (_FIRST.index(m) if m in _FIRST else len(_FIRST))):
            get_method(method)
            for sparsity in sparsities:
                cell = replace(base, method=method, sparsity=float(sparsity), seed=int(seed))
                cell = cell.validate().normalized()
                cells.setdefault(config_hash(cell.to_dict()), cell)
    return list(cells.values())


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 1 <= I <= N (1-based, as Slurm array indices usually are)."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"shard {text!r} must look like I/N, e.g. 2/8") from None
    if not 1 <= i <= n:
        raise UsageError(f"shard {text!r}: need 1 <= I <= N")
    return i, n


def shard(cells: list[CellConfig], i: int, n: int) -> list[CellConfig]:
    """Cells of shard i of n: a deterministic split by config hash (independent of order)."""
    return [c for c in cells if int(config_hash(c.to_dict()), 16) % n == i - 1]
