"""Iterative magnitude pruning with rewinding (Frankle & Carbin; Kim et al. ECCV'22).

Each round trains, then prunes the smallest-magnitude fraction ``p`` of the *remaining*
conv and linear weights globally (not BN, not biases), then rewinds the surviving
weights to their values after ``rewind_epoch`` epochs of the first round. After K
rounds the sparsity is ``1 - (1 - p)^K``, so ``p = 1 - (1 - sparsity)^(1/K)``; K pruning
rounds are K + 1 training runs (the last one trains the ticket). ``rewind_lr`` also
resumes the lr schedule at the rewind step (Frankle-style) instead of restarting it.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from .. import hookimpl
from ..errors import UsageError
from . import magnitude
from .base import Pruner, RoundEnd, TrainContext
from .common import check_sparsity

__all__ = ["IMPPruner", "round_rate", "rounds_at_rate"]


def round_rate(sparsity: float, rounds: int) -> float:
    """Per-round rate p with ``1 - (1 - p)^rounds == sparsity``."""
    check_sparsity(sparsity)
    if int(rounds) < 1:
        raise UsageError(f"IMP rounds {rounds!r} must be at least 1")
    return 1.0 - (1.0 - sparsity) ** (1.0 / int(rounds))


def rounds_at_rate(sparsity: float, rate: float) -> int:
    """Pruning rounds K at ``rate`` of the remaining weights per round to reach ``sparsity``:
    the smallest K with ``1 - (1 - rate)^K >= sparsity`` (0.25 per round: K = 3, 6, 9, 11 for
    0.5, 0.8, 0.9, 0.95)."""
    check_sparsity(sparsity)
    if not 0.0 < rate < 1.0:
        raise UsageError(f"IMP rate {rate!r} must be in (0, 1)")
    if sparsity <= 0.0:
        return 1
    k = math.log(1.0 - sparsity) / math.log(1.0 - rate)
    return max(1, math.ceil(k - 1e-9))


class IMPPruner(Pruner):
    """IMP: K prune-rewind rounds over global magnitude masks (parametrizations)."""

    uses = ("sparsity", "recipe.lr", "recipe.weight_decay", "recipe.imp_rounds", "recipe.imp_rate",
            "recipe.rewind_epoch", "recipe.rewind_lr")
    weight_kinds = ("fp32",)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        self.sparsity = cell.sparsity
        self.fixed_rate = cell.recipe.imp_rate > 0
        if self.fixed_rate:  # Kim et al.: a fixed fraction per round, the last round lands on the target
            self.k = rounds_at_rate(cell.sparsity, cell.recipe.imp_rate)
            self.rate = cell.recipe.imp_rate
        else:
            self.k = cell.recipe.imp_rounds
            self.rate = round_rate(cell.sparsity, self.k)
        self.rewind_epoch = min(cell.recipe.rewind_epoch, cell.recipe.epochs)
        self.rewind_lr = cell.recipe.rewind_lr
        return magnitude.add_masks(model)

    def rounds(self, recipe) -> int:
        return getattr(self, "k", recipe.imp_rounds) + 1

    def _maybe_snapshot(self, model: nn.Module, ctx: TrainContext) -> None:
        if ctx.round == 0 and "rewind" not in self.state and ctx.epoch == self.rewind_epoch:
            self.state["rewind"] = magnitude.snapshot(model)

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self._maybe_snapshot(model, ctx)

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> bool:
        self._maybe_snapshot(model, ctx)
        return False

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        if self.fixed_rate and ctx.round >= self.k - 1:
            magnitude.prune_to(model, self.sparsity)  # the last pruning round reaches the target exactly
        else:
            magnitude.prune_remaining(model, self.rate)
        magnitude.rewind(model, self.state["rewind"])
        return RoundEnd(start_epoch=self.rewind_epoch if self.rewind_lr else 0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rounds": self.k, "rate_per_round": self.rate,
                "rewind_epoch": self.rewind_epoch,
                "rewind": "weights+lr schedule" if self.rewind_lr else "weights (lr schedule restarts)"}


@hookimpl
def register_pruners(register):
    register("imp", IMPPruner)
