"""The ``dense`` pruner: no mask; fp32 or binary (BNN "1/32") trained weights."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

from .. import hookimpl
from ..errors import UsageError, check_choice
from ..nn.binary import BinaryWeight
from .common import prunable_layers

__all__ = ["dense", "binarize_weights", "WEIGHT_KINDS"]

WEIGHT_KINDS = ("fp32", "binary")


def binarize_weights(model: nn.Module, *, keep_first: bool = False, keep_last: bool = False) -> nn.Module:
    """Make every prunable layer's weight ``mean|W| * sign(W)`` (latent W trains)."""
    layers = prunable_layers(model)
    for i, (_, module) in enumerate(layers):
        if (keep_first and i == 0) or (keep_last and i == len(layers) - 1):
            continue
        parametrize.register_parametrization(module, "weight", BinaryWeight())
    return model


def dense(model: nn.Module, sparsity: float = 0.0, *, weights: str = "fp32", keep_first=False, keep_last=False, **_):
    """Train every weight; ``weights='binary'`` gives a BNN. Returns ``model``."""
    check_choice("weight kind", weights, WEIGHT_KINDS)
    if sparsity:
        raise UsageError(f"sparsity {sparsity!r} with the dense pruner; dense keeps every weight (use 0)")
    if weights == "binary":
        binarize_weights(model, keep_first=keep_first, keep_last=keep_last)
    return model


dense.search = "dense"


@hookimpl
def register_pruners(register):
    register("dense", dense)
