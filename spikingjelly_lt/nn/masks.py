"""A fixed 0/1 weight mask as a ``torch.nn.utils.parametrize`` parametrization.

``module.weight`` is then ``original * mask``: pruned weights are exactly zero in every
forward (a mask, not a penalty), the mask lives in the state_dict as a buffer (so
checkpoints, DDP buffer broadcasts and tickets carry it with no side channel), and
``parametrizations.weight.original`` keeps the surviving values to rewind.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["WeightMask", "add_weight_mask", "weight_mask_of"]


class WeightMask(nn.Module):
    """``W -> W * mask`` with a float 0/1 ``mask`` buffer (all ones: nothing pruned yet)."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)


def add_weight_mask(module: nn.Module) -> WeightMask:
    """Register an all-ones :class:`WeightMask` on ``module.weight`` (once); returns it."""
    existing = weight_mask_of(module)
    if existing is not None:
        return existing
    mask = WeightMask(module.weight.shape).to(module.weight.device)
    parametrize.register_parametrization(module, "weight", mask)
    return mask


def weight_mask_of(module: nn.Module) -> WeightMask | None:
    """The module's :class:`WeightMask`, if it has one."""
    if parametrize.is_parametrized(module, "weight"):
        for p in module.parametrizations.weight:
            if isinstance(p, WeightMask):
                return p
    return None
