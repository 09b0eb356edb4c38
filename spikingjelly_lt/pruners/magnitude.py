"""Global magnitude masks over conv + linear weights (not BN, not biases), as parametrizations.

Shared by IMP, the early-time and early-bird tickets and gradual magnitude pruning:
every prunable layer carries a :class:`~spikingjelly_lt.nn.masks.WeightMask`, and a
pruning step only rewrites the mask buffers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.masks import add_weight_mask, weight_mask_of
from ..nn.topk import topk_mask
from .common import latent_weight, prunable_layers

__all__ = ["add_masks", "masked_layers", "global_magnitude_masks", "set_masks", "prune_remaining",
           "prune_to", "current_sparsity", "snapshot", "rewind", "mask_distance"]


def add_masks(model: nn.Module) -> nn.Module:
    """An all-ones :class:`WeightMask` on every prunable layer; returns ``model``."""
    for _, module in prunable_layers(model):
        add_weight_mask(module)
    return model


def masked_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in prunable_layers(model) if weight_mask_of(m) is not None]


def global_magnitude_masks(model: nn.Module, keep: int, *, within_current: bool = True) -> list[torch.Tensor]:
    """0/1 masks keeping the ``keep`` largest ``|w|`` over all masked layers.

    ``within_current``: only weights the current masks keep compete (pruned stays
    pruned). Ties break by position (:func:`~spikingjelly_lt.nn.topk.topk_mask`).
    """
    layers = masked_layers(model)
    with torch.no_grad():
        scores = []
        for _, m in layers:
            s = latent_weight(m).detach().abs().reshape(-1).float()
            if within_current:
                s = torch.where(weight_mask_of(m).mask.reshape(-1) > 0, s, torch.full_like(s, -1.0))
            scores.append(s)
        flat = torch.cat(scores)
        keep_mask = topk_mask(flat, int(keep))
        return [piece.view_as(m.weight).float() for piece, (_, m) in
                zip(keep_mask.split([s.numel() for s in scores]), layers)]


def set_masks(model: nn.Module, masks: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for (_, m), mask in zip(masked_layers(model), masks):
            weight_mask_of(m).mask.copy_(mask)


def _total(model: nn.Module) -> int:
    """Weights under a magnitude mask (shapes only: no device read)."""
    return sum(m.weight.numel() for _, m in masked_layers(model))


def _kept(model: nn.Module) -> int:
    """Weights the masks keep: one read from the device for all layers."""
    counts = [weight_mask_of(m).mask.count_nonzero() for _, m in masked_layers(model)]
    return int(torch.stack(counts).sum()) if counts else 0


def current_sparsity(model: nn.Module) -> float:
    return 1.0 - _kept(model) / max(_total(model), 1)


def prune_remaining(model: nn.Module, rate: float) -> nn.Module:
    """Prune ``rate`` of the remaining weights globally by magnitude (one IMP round)."""
    kept = _kept(model)
    set_masks(model, global_magnitude_masks(model, kept - round(float(rate) * kept)))
    return model


def prune_to(model: nn.Module, sparsity: float, *, within_current: bool = True) -> nn.Module:
    """Masks at overall ``sparsity`` by global magnitude (never un-prunes when ``within_current``)."""
    total = _total(model)
    set_masks(model, global_magnitude_masks(model, round((1.0 - float(sparsity)) * total),
                                            within_current=within_current))
    return model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state to rewind to, without the masks."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith(".mask")}


def rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` (from :func:`snapshot`) keeping the current masks (pruned stays zero)."""
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)
    return model


def mask_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Normalized Hamming distance between two mask lists (fraction of entries that differ)."""
    diff = sum(int(((x > 0) != (y > 0)).sum()) for x, y in zip(a, b))
    return diff / max(sum(x.numel() for x in a), 1)
