"""Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017; docs/design.md §2.7).

One training run whose sparsity follows the cubic schedule

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n dt))^3,   t_0 <= t <= t_0 + n dt,

with t counted in optimizer steps: the net prunes every ``dt`` steps to ``s_t`` by
global magnitude over the weights the current mask keeps (pruned stays pruned), fast
at first while the redundant weights go and slowly near the target. Unlike Zhu &
Gupta's per-layer schedule, the threshold is global over conv + linear (not BN, not
biases), like every magnitude pruner here; the mask is a parametrization from the start.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from .. import hookimpl
from ..errors import UsageError
from . import magnitude
from .base import Pruner, TrainContext
from .common import check_sparsity

__all__ = ["GradualPruner", "gmp_sparsity", "gmp_window"]

log = logging.getLogger("spikingjelly_lt")


def gmp_sparsity(step: int, s_i: float, s_f: float, t0: int, n_dt: int) -> float:
    """Zhu & Gupta's s_t: ``s_i`` up to ``t0``, the cubic ramp, exactly ``s_f`` from ``t0 + n_dt`` on."""
    if step <= t0:
        return float(s_i)
    if n_dt <= 0 or step >= t0 + n_dt:
        return float(s_f)
    return s_f + (s_i - s_f) * (1.0 - (step - t0) / n_dt) ** 3


def gmp_window(epochs: int, start_epoch: int, end_epoch: int) -> tuple[int, int]:
    """(start, end) epochs of the ramp: ``end_epoch`` 0 means ``round(0.75 * epochs)``.

    The ramp spans at least one epoch (end >= start + 1) and ends within the run; a start
    at or after the last epoch, or an explicit end past the run, is a usage error.
    """
    if epochs <= 0:
        return 0, 0
    if start_epoch >= epochs:
        raise UsageError(f"gmp_start_epoch {start_epoch} must be below the run's {epochs} epochs")
    if end_epoch > epochs:
        raise UsageError(f"gmp_end_epoch {end_epoch} is past the run's {epochs} epochs: the target would "
                         "never be reached")
    if end_epoch and end_epoch <= start_epoch:
        raise UsageError(f"gmp_end_epoch {end_epoch} must be after gmp_start_epoch {start_epoch}")
    end = end_epoch or round(0.75 * epochs)
    return start_epoch, min(max(end, start_epoch + 1), epochs)


class GradualPruner(Pruner):
    """Gradual magnitude pruning from ``gmp_initial`` to the cell's sparsity, one round.

    t_0 = ``gmp_start_epoch`` * steps per epoch; the target is reached at
    ``gmp_end_epoch`` * steps per epoch (0: three quarters of the run, rounded, at least
    one epoch after t_0), so n dt = end - t_0 steps. Pruning happens at every step t with
    ``(t - t_0) % gmp_interval == 0`` inside the window, and at its last step in any case,
    where the sparsity is exactly the target. A run of 0 epochs prunes to the target
    before training (one shot).
    """

    uses = ("sparsity", "recipe.lr", "recipe.weight_decay", "recipe.gmp_initial", "recipe.gmp_start_epoch",
            "recipe.gmp_end_epoch", "recipe.gmp_interval")
    weight_kinds = ("fp32",)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        r = cell.recipe
        self.s_f = check_sparsity(cell.sparsity)
        self.s_i = float(r.gmp_initial)
        if self.s_i > self.s_f:
            raise UsageError(f"gmp_initial {self.s_i} is above the target sparsity {self.s_f}")
        self.interval = int(r.gmp_interval)
        self.start_epoch, self.end_epoch = gmp_window(r.epochs, r.gmp_start_epoch, r.gmp_end_epoch)
        self.t0 = self.n_dt = 0
        return magnitude.add_masks(model)

    def _window(self, ctx: TrainContext) -> None:
        self.t0 = self.start_epoch * ctx.steps_per_epoch
        self.n_dt = (self.end_epoch - self.start_epoch) * ctx.steps_per_epoch

    def due(self, step: int) -> bool:
        """Whether the schedule prunes after optimizer step ``step``."""
        end = self.t0 + self.n_dt
        return self.t0 <= step <= end and ((step - self.t0) % self.interval == 0 or step == end)

    def _prune(self, model: nn.Module, step: int) -> None:
        s = gmp_sparsity(step, self.s_i, self.s_f, self.t0, self.n_dt)
        if s <= 0.0:
            return
        magnitude.prune_to(model, s)
        self.state["last"] = {"step": step, "sparsity": s}
        self.state["prunes"] = self.state.get("prunes", 0) + 1

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self._window(ctx)
        if self.n_dt == 0 or ctx.step == self.t0:  # 0 epochs: one shot to the target; else s_i at t_0
            self._prune(model, ctx.step)

    def on_step(self, model: nn.Module, ctx: TrainContext) -> None:
        self._window(ctx)  # also after a resume mid-round, where on_train_start is not called
        if self.due(ctx.step):
            self._prune(model, ctx.step)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "initial_sparsity": self.s_i, "final_sparsity": self.s_f,
                "start_epoch": self.start_epoch, "end_epoch": self.end_epoch, "t0_step": self.t0,
                "n_dt_steps": self.n_dt, "interval_steps": self.interval, "prunes": self.state.get("prunes", 0),
                "last_prune": self.state.get("last"), "scope": "global magnitude within the current mask"}


@hookimpl
def register_pruners(register):
    register("gmp", GradualPruner)
