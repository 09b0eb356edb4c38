"""Shared helpers for pruners: which layers are prunable and how sparse they really are."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["prunable_layers", "effective_weight", "sparsity_report", "check_sparsity"]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``Conv2d`` / ``Linear`` (SpikingJelly's ``layer.*`` subclass these), in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight that actually runs (after parametrizations or ``prune`` masks)."""
    with torch.no_grad():
        if hasattr(module, "weight_mask") and hasattr(module, "weight_orig"):
            return module.weight_orig * module.weight_mask
        return module.weight.detach()


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
