"""Shared helpers for pruners: which layers are prunable, the weight that runs, how sparse."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["prunable_layers", "effective_weight", "latent_weight", "sparsity_report", "check_sparsity"]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``Conv2d`` / ``Linear`` (SpikingJelly's ``layer.*`` subclass these), in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight that runs: every weight transform is a parametrization, so it is ``module.weight``."""
    with torch.no_grad():
        return module.weight.detach()


def latent_weight(module: nn.Module) -> torch.Tensor:
    """The stored weight under the parametrizations (frozen, latent or surviving values)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def sparsity_report(model: nn.Module) -> dict:
    """Zeros counted in the weights that run, per prunable layer and in total.

    Returns ``{"layers": [{"name", "numel", "zeros", "sparsity"}], "numel", "zeros",
    "sparsity"}``; sparsity is the fraction removed.
    """
    layers, total, zeros = [], 0, 0
    for name, module in prunable_layers(model):
        w = effective_weight(module)
        z = int(w.numel() - torch.count_nonzero(w))
        layers.append({"name": name, "numel": w.numel(), "zeros": z, "sparsity": z / w.numel()})
        total += w.numel()
        zeros += z
    return {"layers": layers, "numel": total, "zeros": zeros, "sparsity": zeros / max(total, 1)}


def check_sparsity(sparsity: float) -> float:
    """Validate a sparsity (fraction removed) in [0, 1)."""
    from ..errors import UsageError

    if not 0.0 <= float(sparsity) < 1.0:
        raise UsageError(f"sparsity {sparsity!r} is outside [0, 1) (it is the fraction removed)")
    return float(sparsity)
