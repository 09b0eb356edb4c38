"""A random-mask pruner: the "random ticket" control for any lottery-ticket claim.

Keeps a uniformly random ``1 - sparsity`` of each prunable layer's weights, through
``torch.nn.utils.prune`` (so ``weight_orig`` / ``weight_mask`` appear as usual).
"""

import torch
from torch.nn.utils import prune

from spikingjelly_lt import hookimpl
from spikingjelly_lt.pruners.common import prunable_layers


def random_prune(model: torch.nn.Module, sparsity: float, *, seed: int = 0, **_):
    """Mask a random ``sparsity`` fraction of every prunable weight; returns ``model``."""
    gen = torch.Generator().manual_seed(seed)
    for _, module in prunable_layers(model):
        n = module.weight.numel()
        keep = round((1.0 - sparsity) * n)
        mask = torch.zeros(n)
        mask[torch.randperm(n, generator=gen)[:keep]] = 1.0
        prune.custom_from_mask(module, "weight", mask.view_as(module.weight))
    return model


@hookimpl
def register_pruners(register):
    register("random", random_prune)
