"""Batches from a :class:`DataBundle`: whole-tensor slicing, vectorized crop + flip, seeded.

Every random draw comes from one CPU ``torch.Generator`` seeded from ``(seed, epoch)``,
so the same seed gives the same batches on any device, and a resumed run can
``set_epoch`` to continue the same sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .bundle import DataBundle

__all__ = ["BatchLoader", "make_loader", "augment_batch", "crop_flip", "normalize"]

_EPOCH_STRIDE = 1_000_003  # generator seed = seed * stride + epoch


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Zero-pad ``x`` ``[B, C, H, W]`` by ``padding``, crop ``H x W`` at ``(top, left)`` per
    image (offsets in ``0..2*padding``), then mirror the images where ``flip`` is true."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    cols = torch.arange(w, device=dev)
    rows = top.to(dev)[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = left.to(dev)[:, None] + torch.where(flip.to(dev)[:, None], w - 1 - cols, cols)  # [B, W]
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``padding``) and random horizontal flip of each image."""
    b = x.shape[0]
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.randint(0, 2, (b,), generator=generator).bool()
    return crop_flip(x, top, left, flip, padding)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``float32`` ``(x - mean) / std``; ``uint8`` input is first scaled to [0, 1].

    Always a new tensor: ``x`` may be a view of the data set (a float32 slice), which
    in-place arithmetic would corrupt for every later pass.
    """
    out = x.to(torch.float32, copy=True)
    if x.dtype == torch.uint8:
        out = out.div_(255.0)
    return out.sub_(mean).div_(std)


class BatchLoader:
    """Iterate ``(x, y)`` batches: normalized ``float32 [B, C, H, W]`` and ``int64 [B]``.

    Each iteration is one epoch; the epoch advances by itself, or is set with
    :meth:`set_epoch` (forwarded to the sampler, e.g. a ``DistributedSampler``).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mean: Iterable[float],
        std: Iterable[float],
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        augment: bool,
        sampler: Iterable[int] | None = None,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        dev = torch.device(device) if device is not None else x.device
        self.x, self.y = x.to(dev), y.to(dev)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32, device=dev).view(shape)
        self.std = torch.tensor(tuple(std), dtype=torch.float32, device=dev).view(shape)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment, self.sampler, self.drop_last = augment, sampler, drop_last
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """Images per epoch (the sampler's share when one is given)."""
        return len(self.sampler) if self.sampler is not None else len(self.y)  # type: ignore[arg-type]

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (shuffle and augmentation draws)."""
        self.epoch = epoch

    def _order(self, epoch: int, gen: torch.Generator) -> torch.Tensor | None:
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return torch.as_tensor(list(self.sampler), dtype=torch.long)
        if self.shuffle:
            return torch.randperm(len(self.y), generator=gen)
        return None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        gen = torch.Generator().manual_seed(self.seed * _EPOCH_STRIDE + epoch)
        order = self._order(epoch, gen)
        if order is not None:
            order = order.to(self.x.device)
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, self.num_samples)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                xb = augment_batch(xb, gen)
            yield normalize(xb, self.mean, self.std), yb


def make_loader(
    bundle: DataBundle,
    split: str = "train",
    batch_size: int = 128,
    *,
    shuffle: bool | None = None,
    seed: int = 0,
    augment: bool | None = None,
    sampler: Iterable[int] | None = None,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> BatchLoader:
    """A :class:`BatchLoader` over ``bundle``'s ``split``.

    ``shuffle`` defaults to ``split == "train"``; ``augment`` to ``bundle.augment`` on the
    train split. ``sampler`` (any sized iterable of indices, optionally with ``set_epoch``)
    replaces shuffling. ``device`` moves the split there once; batches are built there.
    """
    x, y = bundle.split(split)
    if augment is None:
        augment = bundle.augment and split == "train"
    elif augment and not bundle.augment:
        raise UsageError(f"data set {bundle.name!r} defines no augmentation")
    if shuffle is None:
        shuffle = split == "train"
    return BatchLoader(
        x,
        y,
        bundle.mean,
        bundle.std,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        augment=augment,
        sampler=sampler,
        drop_last=drop_last,
        device=device,
    )
