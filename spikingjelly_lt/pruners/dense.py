"""The ``dense`` pruner: no mask; fp32 or binary (BNN "1/32") trained weights."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

from .. import hookimpl
from ..nn.binary import BinaryWeight
from .base import Pruner
from .common import prunable_layers

__all__ = ["DensePruner", "binarize_weights"]


def binarize_weights(model: nn.Module, *, keep_first: bool = False, keep_last: bool = False) -> nn.Module:
    """Make every prunable layer's weight ``mean|W| * sign(W)`` (latent W trains)."""
    layers = prunable_layers(model)
    for i, (_, module) in enumerate(layers):
        if (keep_first and i == 0) or (keep_last and i == len(layers) - 1):
            continue
        parametrize.register_parametrization(module, "weight", BinaryWeight())
    return model


class DensePruner(Pruner):
    """Train every weight (one round, SGD); ``weights='binary'`` gives a BNN."""

    sparse = False

    @property
    def uses(self) -> tuple[str, ...]:
        extra = ("model.keep_first", "model.keep_last") if self.weights == "binary" else ()
        return ("recipe.lr", "recipe.weight_decay", *extra)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        if self.weights == "binary":
            binarize_weights(model, keep_first=cell.model.keep_first, keep_last=cell.model.keep_last)
        return model


@hookimpl
def register_pruners(register):
    register("dense", DensePruner)
