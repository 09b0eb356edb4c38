"""The in-memory form every data set takes: a :class:`DataBundle` of whole-split tensors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .. import logger
from ..errors import UsageError

__all__ = ["DataBundle", "load_dataset", "stratified_split", "SPLIT_SEED"]

SPLIT_SEED = 0  # the validation split is the same for every cell (and every seed) of a data set


@dataclass(frozen=True)
class DataBundle:
    """A whole data set in memory.

    ``train_x``/``test_x`` are raw images ``[N, C, H, W]``: ``uint8`` in 0..255 or
    ``float32`` in [0, 1]; ``train_y``/``test_y`` are ``int64`` labels ``[N]``.
    ``mean``/``std`` (one value per channel, on the [0, 1] scale) normalize batches;
    ``augment`` says whether the data set defines train-time crop + flip augmentation.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    val_x: torch.Tensor | None = None  # the validation split carved from the training images
    val_y: torch.Tensor | None = None
    #: content fingerprint of what was read (``sha256:...`` of the files or arrays), or None
    fingerprint: str | None = None
    #: event frames ``[N, T, C, H, W]``: T of the data (no repeat encoding); None for static images
    timesteps: int | None = None

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if split == "train":
            return self.train_x, self.train_y
        if split == "test":
            return self.test_x, self.test_y
        if split == "val":
            if self.val_y is None:
                raise UsageError(f"data set {self.name!r} has no validation split (recipe.val_fraction=0)")
            return self.val_x, self.val_y
        raise UsageError(f"unknown split {split!r}; valid: test, train, val")

    def with_validation(self, fraction: float, seed: int = SPLIT_SEED) -> DataBundle:
        """The same data with ``fraction`` of the training images moved into a validation split,
        stratified by class (see :func:`stratified_split`); 0 leaves the bundle as it is."""
        if fraction <= 0 or self.val_y is not None:  # a data set that brings its own split keeps it
            return self
        train_idx, val_idx = stratified_split(self.train_y, fraction, seed)
        if len(val_idx) == 0:
            raise UsageError(f"validation fraction {fraction:g} of {len(self.train_y)} training images "
                             f"holds no image; raise recipe.val_fraction or the number of images")
        bundle = dataclasses.replace(self, train_x=self.train_x[train_idx], train_y=self.train_y[train_idx],
                                     val_x=self.train_x[val_idx], val_y=self.train_y[val_idx])
        logger.debug("%s: %d train + %d validation images (fraction %g, seed %d)", self.name,
                     len(train_idx), len(val_idx), fraction, seed)
        return bundle

    def resized(self, size: int) -> DataBundle:
        """The same data with every image resized to ``size x size`` (bilinear, as float32 in the
        data's own scale; event frames per frame)."""
        import torch.nn.functional as F

        if size == self.input_size:
            return self

        def resize(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            scale = 255.0 if x.dtype == torch.uint8 else 1.0
            lead = x.shape[:-3]
            flat = x.reshape(-1, *x.shape[-3:]).to(torch.float32) / scale
            out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
            return out.reshape(*lead, *out.shape[-3:]).contiguous()

        return dataclasses.replace(self, train_x=resize(self.train_x), test_x=resize(self.test_x),
                                   val_x=resize(self.val_x), input_size=size)

    def limited(self, train: int | None = None, test: int | None = None) -> DataBundle:
        """The same data set keeping only the first ``train``/``test`` images (None: all)."""
        for what, n in (("train", train), ("test", test)):
            if n is not None and n < 1:
                raise UsageError(f"{what} limit must be at least 1, got {n}")
        if train is None and test is None:
            return self
        bundle = dataclasses.replace(
            self,
            train_x=self.train_x[:train],
            train_y=self.train_y[:train],
            test_x=self.test_x[:test],
            test_y=self.test_y[:test],
        )
        logger.debug(
            "%s: limited to %d train + %d test images",
            self.name,
            len(bundle.train_y),
            len(bundle.test_y),
        )
        return bundle


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = SPLIT_SEED
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train indices, validation indices)``, both sorted: of each class's ``n_c`` images,
    ``round(fraction * n_c)`` drawn without replacement by a generator seeded with ``seed``.

    Disjoint, together every index once, the same for the same labels and seed.
    """
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"validation fraction {fraction!r} must be in [0, 1)")
    labels = torch.as_tensor(labels).cpu()
    gen = torch.Generator().manual_seed(int(seed))
    val = []
    for c in torch.unique(labels).tolist():  # ascending: a fixed order of draws
        idx = torch.nonzero(labels == c).flatten()
        take = int(round(fraction * len(idx)))
        val.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep).flatten(), val_idx


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
    val_fraction: float = 0.0,
    resize: int = 0,
) -> DataBundle:
    """Load the data set ``name`` (registered, see ``register_datasets``, or a reference:
    ``tensors:PATH``, ``imagefolder:DIR``, ``frames:PATH``, ``pkg.module:callable``),
    optionally limited (first N images), then with ``val_fraction`` of the (limited)
    training images held out; ``resize`` > 0 resizes the images (bilinear) to that size."""
    from ..plugins import lookup

    loader = lookup("datasets", name)
    bundle = loader(data_dir)
    if resize:
        bundle = bundle.resized(resize)
    return bundle.limited(limit_train, limit_test).with_validation(val_fraction)
