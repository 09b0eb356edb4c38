"""The in-memory form every data set takes: a :class:`DataBundle` of whole-split tensors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .. import logger
from ..errors import UsageError

__all__ = ["DataBundle", "load_dataset"]


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

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"`` or ``"test"``."""
        if split == "train":
            return self.train_x, self.train_y
        if split == "test":
            return self.test_x, self.test_y
        raise UsageError(f"unknown split {split!r}; valid: test, train")

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


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> DataBundle:
    """Load the registered data set ``name`` (see ``register_datasets``), optionally limited."""
    from ..plugins import lookup

    loader = lookup("datasets", name)
    return loader(data_dir).limited(limit_train, limit_test)
