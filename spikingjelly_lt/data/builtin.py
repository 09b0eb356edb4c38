"""The built-in data sets, registered as an ordinary plugin."""

from .. import hookimpl
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits_bundle

__all__ = ["register_datasets"]


@hookimpl
def register_datasets(register):
    register("digits", load_digits_bundle)
    register("cifar10", load_cifar10)
    register("cifar100", load_cifar100)
