"""Random controls for lottery-ticket claims: an example third-party spikingjelly-lt plugin.

A ticket is "more than its sparsity pattern" only when it beats the controls of
Frankle & Carbin / OpenLTH at the same per-layer sparsities. This distribution
registers three pruners through the ``spikingjelly_lt`` entry point group:

``random-reinit``
    IMP's search (K prune-rewind rounds), but before the final round the surviving
    weights are not rewound: every conv / linear weight and bias is drawn afresh
    (PyTorch's default Kaiming-uniform, seeded from the cell seed + ``REINIT_SEED_OFFSET``)
    and BatchNorm is reset. The ticket's mask is kept.
``random-prune``
    IMP's search, then before the final round the ticket's mask is replaced by a
    random mask with the ticket's per-layer kept counts (seeded from the cell seed +
    ``MASK_SEED_OFFSET``), and the weights are rewound as IMP rewinds them.
``random``
    The one-shot control in the old function form ``fn(model, sparsity, **options)``
    (the trainer adapts it with ``FunctionPruner``): a random mask at the target
    sparsity in every prunable layer, drawn once from the cell seed.

The two controls subclass the built-in :class:`~spikingjelly_lt.pruners.imp.IMPPruner`:
a plugin has exactly the built-ins' powers. Both masks are
:class:`~spikingjelly_lt.nn.masks.WeightMask` parametrizations, like IMP's.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from spikingjelly_lt import hookimpl
from spikingjelly_lt.nn.masks import add_weight_mask, weight_mask_of
from spikingjelly_lt.pruners import magnitude
from spikingjelly_lt.pruners.base import RoundEnd, TrainContext
from spikingjelly_lt.pruners.common import latent_weight, prunable_layers
from spikingjelly_lt.pruners.imp import IMPPruner

__version__ = "0.2.0"
__all__ = ["RandomReinitPruner", "RandomPrunePruner", "random_prune", "random_masks", "reinitialize",
           "REINIT_SEED_OFFSET", "MASK_SEED_OFFSET"]

log = logging.getLogger("spikingjelly_lt.plugins.random")

REINIT_SEED_OFFSET = 1_000_003  # the re-drawn weights never repeat the cell's own draw
MASK_SEED_OFFSET = 2_000_003


def random_masks(shapes_and_kept: list[tuple[torch.Size, int]], seed: int) -> list[torch.Tensor]:
    """One 0/1 mask per ``(shape, kept)``: exactly ``kept`` ones at uniformly random places."""
    gen = torch.Generator().manual_seed(int(seed))
    masks = []
    for shape, kept in shapes_and_kept:
        n = math.prod(shape)
        flat = torch.zeros(n)
        flat[torch.randperm(n, generator=gen)[: int(kept)]] = 1.0
        masks.append(flat.view(shape))
    return masks


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """A fresh draw of every conv / linear weight and bias (PyTorch's default init), BN reset.

    Writes the stored (latent) weights under any parametrization, so masks stay as they are.
    """
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, module in prunable_layers(model):
            w = latent_weight(module)
            fresh = torch.empty(w.shape)
            nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=gen)  # what reset_parameters draws
            w.copy_(fresh)
            if getattr(module, "bias", None) is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(fresh)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                module.bias.copy_(torch.empty(module.bias.shape).uniform_(-bound, bound, generator=gen))
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()  # running stats and affine
    return model


def _kept(model: nn.Module) -> dict[str, int]:
    return {name: int(weight_mask_of(m).mask.count_nonzero()) for name, m in magnitude.masked_layers(model)}


class _IMPControl(IMPPruner):
    """IMP whose last ``on_round_end`` (the one before the ticket trains) does a control."""

    control = ""

    def apply(self, model: nn.Module, cell) -> nn.Module:
        self.seed = int(cell.seed)
        return super().apply(model, cell)

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        if ctx.round < ctx.rounds - 2:  # an ordinary IMP round of the search
            return super().on_round_end(model, ctx)
        magnitude.prune_remaining(model, self.rate)  # the IMP ticket's mask
        self.state["ticket_kept"] = _kept(model)
        plan = self.control_round(model, ctx)
        self.state["kept"] = _kept(model)
        log.info("%s before round %d: kept %s", self.control, ctx.round + 1, self.state["kept"])
        return plan

    def control_round(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "control": self.control, "training_runs": self.k + 1,
                "ticket_kept": self.state.get("ticket_kept"), "kept": self.state.get("kept")}


class RandomReinitPruner(_IMPControl):
    """OpenLTH's random reinitialization: the IMP ticket's mask, freshly drawn weights."""

    control = "random-reinit"

    def control_round(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        self.state["reinit_seed"] = self.seed + REINIT_SEED_OFFSET
        reinitialize(model, self.state["reinit_seed"])
        return RoundEnd(start_epoch=0)  # fresh weights start where a fresh model starts

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["rewind"] = "none: weights re-drawn (Kaiming uniform), BN reset, lr schedule restarts"
        return {**out, "reinit_seed": self.state.get("reinit_seed")}


class RandomPrunePruner(_IMPControl):
    """OpenLTH's random pruning: a random mask at the IMP ticket's per-layer kept counts, rewound."""

    control = "random-prune"

    def control_round(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        self.state["mask_seed"] = self.seed + MASK_SEED_OFFSET
        layers = magnitude.masked_layers(model)
        kept = self.state["ticket_kept"]
        masks = random_masks([(m.weight.shape, kept[name]) for name, m in layers], self.state["mask_seed"])
        magnitude.set_masks(model, masks)
        magnitude.rewind(model, self.state["rewind"])
        return RoundEnd(start_epoch=self.rewind_epoch if self.rewind_lr else 0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mask_seed": self.state.get("mask_seed")}


def random_prune(model: nn.Module, sparsity: float, *, seed: int = 0, keep_first: bool = False,
                 keep_last: bool = False, **_) -> nn.Module:
    """One shot: a random ``round(sparsity * n)`` of each prunable layer's ``n`` weights masked.

    The old function form (``FunctionPruner`` calls it once, right after the model is
    built); the masks are ``WeightMask`` parametrizations. ``keep_first`` / ``keep_last``
    leave the first / last prunable layer dense.
    """
    layers = prunable_layers(model)
    if keep_first:
        layers = layers[1:]
    if keep_last:
        layers = layers[:-1]
    shapes = [(m.weight.shape, m.weight.numel() - round(sparsity * m.weight.numel())) for _, m in layers]
    for (_, m), mask in zip(layers, random_masks(shapes, seed)):
        with torch.no_grad():
            add_weight_mask(m).mask.copy_(mask.to(m.weight.device))
    return model


@hookimpl
def register_pruners(register):
    register("random-reinit", RandomReinitPruner)
    register("random-prune", RandomPrunePruner)
    register("random", random_prune)
