"""Top-k masks with deterministic tie-breaking, identical on every device.

The threshold (the k-th largest value) is picked by the selection that is fast where the
tensor lives: ``kthvalue`` (a quickselect) on the CPU; ``topk`` on an accelerator, where
``kthvalue`` runs one thread block per slice, so a whole layer's scores would be selected
on one streaming multiprocessor every forward. Both give the same threshold, hence the
same mask. On an accelerator the tie-breaking is done without reading anything back to
the host (no ``int(mask.sum())`` per layer and forward).
"""

from __future__ import annotations

import torch

__all__ = ["keep_count", "topk_mask", "kth_largest"]


def keep_count(numel: int, sparsity: float) -> int:
    """k = round((1 - sparsity) * n), at least 1 so a layer never goes fully silent."""
    return max(1, min(numel, round((1.0 - sparsity) * numel)))


def kth_largest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest entry of 1-D ``flat`` (0-dim tensor on its device), 1 <= k <= numel."""
    if flat.device.type == "cpu":
        # the k-th largest is the (n - k + 1)-th smallest: a quickselect, about 2x faster than topk
        return torch.kthvalue(flat, flat.numel() - k + 1).values
    return torch.topk(flat, k, sorted=False).values.min()


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
    threshold = kth_largest(flat, k)
    mask = flat >= threshold
    if flat.device.type != "cpu":  # no host read: always resolve ties (a no-op without them)
        above = flat > threshold
        ties = mask & ~above
        return (above | (ties & (ties.cumsum(0) <= k - above.sum()))).view_as(values)
    if int(mask.sum()) != k:  # ties at the threshold: keep the lowest indices among them
        above = flat > threshold
        ties = flat == threshold
        mask = above | (ties & (ties.cumsum(0) <= k - int(above.sum())))
    return mask.view_as(values)
