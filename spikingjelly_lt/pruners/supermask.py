"""The ``supermask`` pruner: edge-popup (fp) or biprop / BinW-SLT (binary) tickets.

Weights are re-drawn (Kaiming normal, fan_in, ReLU gain) and frozen; only the scores
(and, with ``learn_bn``, BatchNorm affine parameters) train. ``bake`` removes the
parametrizations and leaves plain layers holding the effective weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import hookimpl
from ..errors import check_choice
from ..nn.supermask import GlobalTopK, Supermask
from .common import check_sparsity, prunable_layers

__all__ = ["supermask", "bake", "score_parameters", "supermask_layers", "SCOPES"]

SCOPES = ("layer", "global")


def supermask(
    model: nn.Module,
    sparsity: float,
    *,
    weights: str = "binary",
    scope: str = "layer",
    keep_first: bool = False,
    keep_last: bool = False,
    learn_bn: bool = False,
    **_,
) -> nn.Module:
    """Turn every prunable layer into a supermask layer; returns ``model``.

    Args:
        sparsity: fraction of weights removed per layer (or overall, ``scope='global'``).
        weights: 'binary' (``alpha * M * sign(W)``) or 'fp32' (``W * M``).
        keep_first / keep_last: leave the first / last layer dense and trainable.
        learn_bn: let BatchNorm affine parameters train (else they stay at 1 / 0).
    """
    check_sparsity(sparsity)
    check_choice("weight kind", weights, ("fp32", "binary"))
    check_choice("supermask scope", scope, SCOPES)
    shared = GlobalTopK(sparsity) if scope == "global" else None
    layers = prunable_layers(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for i, (_, module) in enumerate(layers):
        if (keep_first and i == 0) or (keep_last and i == len(layers) - 1):
            module.weight.requires_grad_(True)
            if module.bias is not None:
                module.bias.requires_grad_(True)
            continue
        with torch.no_grad():
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                module.bias.zero_()
        parametrize.register_parametrization(
            module, "weight", Supermask(module.weight.shape, sparsity, weights == "binary", shared)
        )
        module.parametrizations.weight.original.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.requires_grad_(learn_bn)
            m.bias.requires_grad_(learn_bn)
    return model


supermask.search = "supermask"


def supermask_layers(model: nn.Module) -> list[tuple[str, Supermask]]:
    """(layer name, its Supermask parametrization) for every supermask layer."""
    out = []
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, Supermask):
                    out.append((name, p))
    return out


def score_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p.scores for _, p in supermask_layers(model)]


def bake(model: nn.Module) -> nn.Module:
    """Remove every parametrization, keeping the effective weight as a plain tensor."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


@hookimpl
def register_pruners(register):
    register("supermask", supermask)
