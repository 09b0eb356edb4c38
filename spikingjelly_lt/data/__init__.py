"""Data sets: a loader ``loader(data_dir: str | None = None) -> DataBundle`` per name
(registered through ``register_datasets``), and seeded, vectorized batch loaders."""

from .bundle import DataBundle, load_dataset
from .cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    load_cifar10,
    load_cifar100,
)
from .digits import load_digits_bundle
from .loader import BatchLoader, augment_batch, crop_flip, make_loader, normalize

__all__ = [
    "DataBundle",
    "load_dataset",
    "load_cifar10",
    "load_cifar100",
    "load_digits_bundle",
    "BatchLoader",
    "make_loader",
    "augment_batch",
    "crop_flip",
    "normalize",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
]
