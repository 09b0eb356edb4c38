"""The built-in data sets, registered as an ordinary plugin."""

from .. import hookimpl
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits_bundle

__all__ = ["register_datasets"]


# what `sjlt bench` asks of --data-dir: True needs it, False reads none (a stray one is refused)
load_cifar10.takes_data_dir = load_cifar100.takes_data_dir = True
load_digits_bundle.takes_data_dir = False


@hookimpl
def register_datasets(register):
    register("digits", load_digits_bundle)
    register("cifar10", load_cifar10)
    register("cifar100", load_cifar100)
