"""Iterative magnitude pruning with rewinding (Frankle & Carbin; Kim et al. ECCV'22).

Each round prunes the smallest-magnitude fraction ``p`` of the *remaining* conv and
linear weights globally (not BN, not biases) through ``torch.nn.utils.prune``, so
pruned weights are exactly zero in every forward (mask, not penalty), then rewinds
the surviving weights to their values at an early epoch. After K rounds the sparsity
is ``1 - (1 - p)^K``, so ``p = 1 - (1 - sparsity)^(1/K)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from .. import hookimpl
from ..errors import UsageError, check_choice
from .common import check_sparsity, prunable_layers

__all__ = ["imp", "round_rate", "prune_round", "rewind", "snapshot"]


def round_rate(sparsity: float, rounds: int) -> float:
    """Per-round rate p with ``1 - (1 - p)^rounds == sparsity``."""
    check_sparsity(sparsity)
    if int(rounds) < 1:
        raise UsageError(f"IMP rounds {rounds!r} must be at least 1")
    return 1.0 - (1.0 - sparsity) ** (1.0 / int(rounds))


def prune_round(model: nn.Module, rate: float) -> nn.Module:
    """Prune ``rate`` of the remaining weights globally by magnitude; returns ``model``."""
    params = [(m, "weight") for _, m in prunable_layers(model)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(rate))
    return model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state to rewind to (weights keyed as the unpruned names)."""
    return {k.replace("weight_orig", "weight"): v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("_mask")}


def rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` into the model, keeping the current masks (pruned stays zero)."""
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            target = key[: -len("weight")] + "weight_orig" if key.endswith("weight") and key[: -len("weight")] + "weight_orig" in own else key
            own[target].copy_(value)
    return model


def imp(model: nn.Module, sparsity: float, *, weights: str = "fp32", rounds: int = 1, **_) -> nn.Module:
    """One-shot form: prune to ``sparsity`` in ``rounds`` magnitude steps without training.

    The trainer runs the real IMP (train, prune one round, rewind, repeat K times).
    """
    check_choice("weight kind", weights, ("fp32",))
    rate = round_rate(sparsity, rounds)
    for _ in range(int(rounds)):
        prune_round(model, rate)
    return model


imp.search = "imp"


@hookimpl
def register_pruners(register):
    register("imp", imp)
