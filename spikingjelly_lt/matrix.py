"""Expand a benchmark request into resolved cells, and split them into shards."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .cell import Cell
from .errors import UsageError
from .methods import BASELINES, Resolved, resolve

__all__ = ["expand", "shard", "parse_shard"]

log = logging.getLogger("spikingjelly_lt")


def expand(base: Cell, methods, sparsities, seeds, widths=None) -> list[Resolved]:
    """Every (method, sparsity, seed, width) cell, resolved and deduplicated.

    ``seeds``: one list for every method, or ``{method: seeds}`` (a profile's seed plan;
    a method missing from it runs no cell). ``widths``: the width axis (None: the base
    cell's width). Cells run seed by seed, and width by width within a seed.

    Cells run in the order given, except that the dense ``snn`` of a seed runs before
    the other cells of that seed (their ``x SNN`` saving needs its energy); a log line
    says so when that moves a cell.
    """
    order = sorted(methods, key=lambda m: 0 if m == BASELINES[0] else 1)
    if list(order) != list(methods):
        log.info("running %s first: the other cells' x SNN saving needs its energy", BASELINES[0])
    plan = {m: list(seeds.get(m, ())) for m in methods} if isinstance(seeds, Mapping) else \
        {m: list(seeds) for m in methods}
    cells: dict[str, Resolved] = {}
    widths = [base.model.width] if widths is None else [float(w) for w in widths]
    for seed in sorted({s for v in plan.values() for s in v}):
        for width in widths:
            for method in order:
                if seed not in plan[method]:
                    continue
                for sparsity in sparsities:
                    r = resolve(base.replace(method=method, sparsity=float(sparsity), seed=int(seed),
                                             **{"model.width": width}))
                    cells.setdefault(r.hash, r)
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


def shard(cells: list[Resolved], i: int, n: int) -> list[Resolved]:
    """Cells of shard i of n: a deterministic split by cell hash (independent of order)."""
    return [c for c in cells if int(c.hash, 16) % n == i - 1]
