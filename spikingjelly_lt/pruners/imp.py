"""Iterative magnitude pruning with rewinding (Frankle & Carbin; Kim et al. ECCV'22).

Each round trains, then prunes the smallest-magnitude fraction ``p`` of the *remaining*
conv and linear weights globally (not BN, not biases), then rewinds the surviving
weights to their values after ``rewind_epoch`` epochs of the first round. After K
rounds the sparsity is ``1 - (1 - p)^K``, so ``p = 1 - (1 - sparsity)^(1/K)``; K pruning
rounds are K + 1 training runs (the last one trains the ticket). ``rewind_lr`` also
resumes the lr schedule at the rewind step (Frankle-style) instead of restarting it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import hookimpl
from ..errors import UsageError
from . import magnitude
from .base import Pruner, RoundEnd, TrainContext
from .common import check_sparsity

__all__ = ["IMPPruner", "round_rate"]


def round_rate(sparsity: float, rounds: int) -> float:
    """Per-round rate p with ``1 - (1 - p)^rounds == sparsity``."""
    check_sparsity(sparsity)
    if int(rounds) < 1:
        raise UsageError(f"IMP rounds {rounds!r} must be at least 1")
    return 1.0 - (1.0 - sparsity) ** (1.0 / int(rounds))


class IMPPruner(Pruner):
    """IMP: K prune-rewind rounds over global magnitude masks (parametrizations)."""

    uses = ("sparsity", "recipe.lr", "recipe.weight_decay", "recipe.imp_rounds", "recipe.rewind_epoch",
            "recipe.rewind_lr")
    weight_kinds = ("fp32",)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        self.sparsity = cell.sparsity
        self.k = cell.recipe.imp_rounds
        self.rate = round_rate(cell.sparsity, self.k)
        self.rewind_epoch = min(cell.recipe.rewind_epoch, cell.recipe.epochs)
        self.rewind_lr = cell.recipe.rewind_lr
        return magnitude.add_masks(model)

    def rounds(self, recipe) -> int:
        return recipe.imp_rounds + 1

    def _maybe_snapshot(self, model: nn.Module, ctx: TrainContext) -> None:
        if ctx.round == 0 and "rewind" not in self.state and ctx.epoch == self.rewind_epoch:
            self.state["rewind"] = magnitude.snapshot(model)

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self._maybe_snapshot(model, ctx)

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> bool:
        self._maybe_snapshot(model, ctx)
        return False

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
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
