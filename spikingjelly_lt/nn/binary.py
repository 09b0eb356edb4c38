"""Binary trained weights (BNN, "1/32"): latent real ``W``, forward ``alpha * sign(W)``.

``alpha = mean |W|`` per layer (not differentiated); the gradient to ``W`` is the
clipped straight-through estimator ``g * 1{|W| <= 1}``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BinaryWeight"]


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight):
        ctx.save_for_backward(weight)
        alpha = weight.abs().mean()
        return alpha * torch.sign(weight)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        return grad * (weight.abs() <= 1).to(grad.dtype)


class BinaryWeight(nn.Module):
    """``torch.nn.utils.parametrize`` parametrization: ``W -> mean|W| * sign(W)``."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _SignSTE.apply(weight)
