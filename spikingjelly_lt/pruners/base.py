"""The pruner lifecycle: the fixed points at which the trainer calls a pruner.

A pruner is a :class:`Pruner` subclass registered by name (``register("imp", IMPPruner)``);
the trainer builds one per cell and knows no pruner by name. The hooks, in call order:

==============================  =========================================================
``apply(model, cell)``          once, right after the model is built: install the weight
                                parametrizations (masks, scores, binary weights)
``param_groups(model, recipe)`` at the start of every round: what trains, under which
                                optimizer (``"sgd"`` or ``"adam"``) and learning rate
``rounds(recipe)``              once: how many training runs the search takes
``on_train_start(model, ctx)``  at the start of every round, before its first step
``on_step(model, ctx)``         after every optimizer step (schedules: gradual pruning)
``on_epoch_end(model, ctx)``    after every epoch; return True to end the round early
``on_round_end(model, ctx)``    between rounds (prune, rewind); returns a :class:`RoundEnd`
``describe()``                  what a result row records about the search
==============================  =========================================================

Everything a pruner must remember across a resume lives in ``self.state`` (a dict of
plain values and tensors, saved in every checkpoint). A plain function in the
``torch.nn.utils.prune`` shape, ``fn(model, sparsity, **options) -> model``, still
registers: :class:`FunctionPruner` adapts it (one shot at ``apply``, one round).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Pruner", "FunctionPruner", "ParamGroup", "RoundEnd", "TrainContext", "make_pruner",
           "WEIGHT_KINDS"]

WEIGHT_KINDS = ("fp32", "binary")


@dataclass
class ParamGroup:
    """Parameters that train under one optimizer kind (``"sgd"``: momentum 0.9, or ``"adam"``)."""

    params: list[nn.Parameter]
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0
    name: str = ""


@dataclass
class RoundEnd:
    """What the trainer does before the next round.

    ``start_epoch``: the next round starts at this epoch, with the lr schedule resumed at
    that epoch's first step (Frankle-style rewinding); 0 restarts the schedule.
    The optimizer is always re-created (its momentum and Adam moments reset).
    """

    start_epoch: int = 0


@dataclass
class TrainContext:
    """What the trainer tells a hook: where training stands, and a way to look at data."""

    cell: Any
    round: int = 0
    rounds: int = 1
    epoch: int = 0  # epochs finished in this round
    step: int = 0  # optimizer steps taken in this round
    steps_per_epoch: int = 1
    history: list[dict] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    train_batches: Any = None  # callable(n_images) -> iterator of (x, y) training batches, fixed order
    val_batches: Any = None  # the same over the validation split (None without one): for in-run choices

    @property
    def recipe(self):
        return self.cell.recipe


class Pruner:
    """Base class of every pruner: a dense, one-round default for every hook.

    Class attributes a subclass sets:
        uses: the cell keys (dotted) this pruner reads; they enter the cell's identity.
        sparse: whether the pruner removes weights (False: ``sparsity`` is ignored).
        weight_kinds: the weight kinds ("fp32", "binary") it supports.
    """

    uses: tuple[str, ...] = ("recipe.lr", "recipe.weight_decay")
    sparse: bool = True
    weight_kinds: tuple[str, ...] = WEIGHT_KINDS

    def __init__(self, weights: str = "fp32") -> None:
        from ..errors import check_choice

        self.weights = check_choice(f"weight kind of pruner {type(self).__name__}", weights, self.weight_kinds)
        self.state: dict[str, Any] = {}

    # -- the lifecycle -------------------------------------------------------------------

    def apply(self, model: nn.Module, cell) -> nn.Module:
        """Install parametrizations on ``model`` (built with ``cell``'s seed); returns it."""
        return model

    def param_groups(self, model: nn.Module, recipe) -> list[ParamGroup]:
        """Default: every trainable parameter under SGD with the recipe's lr and weight decay."""
        params = [p for p in model.parameters() if p.requires_grad]
        return [ParamGroup(params, "sgd", recipe.lr, recipe.weight_decay, "weights")]

    def rounds(self, recipe) -> int:
        return 1

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        pass

    def on_step(self, model: nn.Module, ctx: TrainContext) -> None:
        pass

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> bool:
        return False

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        return RoundEnd()

    def describe(self) -> dict[str, Any]:
        """What a result row records about this pruner (JSON values)."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "weights": self.weights}

    # -- resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)


class FunctionPruner(Pruner):
    """Adapter for a function pruner ``fn(model, sparsity, **options) -> model`` (one shot).

    It is called once at ``apply`` with ``weights``, ``seed``, ``scope``, ``keep_first``,
    ``keep_last`` and ``learn_bn`` as keyword options; masks it leaves in the
    ``torch.nn.utils.prune`` form become parametrizations; then one round trains what is
    trainable under SGD.
    """

    uses = ("sparsity", "recipe.lr", "recipe.weight_decay", "model.keep_first", "model.keep_last",
            "model.learn_bn", "model.scope")

    def __init__(self, fn, weights: str = "fp32") -> None:
        self.fn = fn
        self.sparse = getattr(fn, "sparse", True)
        super().__init__(weights)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        m = cell.model
        out = self.fn(model, cell.sparsity if self.sparse else 0.0, weights=self.weights, seed=cell.seed,
                      scope=m.scope, keep_first=m.keep_first, keep_last=m.keep_last, learn_bn=m.learn_bn)
        return as_parametrizations(model if out is None else out)

    def describe(self) -> dict[str, Any]:
        fn = self.fn
        return {"class": f"{fn.__module__}.{getattr(fn, '__qualname__', fn)}", "weights": self.weights,
                "form": "function"}


def as_parametrizations(model: nn.Module) -> nn.Module:
    """Turn ``torch.nn.utils.prune`` masks (``weight_orig`` / ``weight_mask``) into
    :class:`~spikingjelly_lt.nn.masks.WeightMask` parametrizations, so every mask is read one way."""
    from torch.nn.utils import prune

    from ..nn.masks import add_weight_mask

    for module in model.modules():
        if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
            mask = module.weight_mask.detach().clone()
            prune.remove(module, "weight")  # leaves weight = weight_orig * mask as a plain parameter
            with torch.no_grad():
                add_weight_mask(module).mask.copy_(mask)
    return model


def make_pruner(obj, weights: str) -> Pruner:
    """A fresh pruner for one cell from what a plugin registered (a Pruner class or a function)."""
    if inspect.isclass(obj) and issubclass(obj, Pruner):
        return obj(weights=weights)
    if isinstance(obj, Pruner):
        raise TypeError(f"register the Pruner class {type(obj).__name__}, not an instance")
    if callable(obj):
        return FunctionPruner(obj, weights=weights)
    raise TypeError(f"a pruner must be a Pruner subclass or a function, got {obj!r}")
