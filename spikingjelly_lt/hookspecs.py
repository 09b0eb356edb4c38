"""Hook specifications: every pruner, neuron, architecture, energy model and data set
(built-in or third-party) enters through one of these ``register_*(register)`` hooks."""

from pluggy import HookspecMarker

hookspec = HookspecMarker("spikingjelly_lt")


@hookspec
def register_pruners(register):
    """Register pruners: ``register(name, pruner)``; a pruner is a callable
    ``pruner(model, sparsity, **options) -> model`` in the ``torch.nn.utils.prune`` shape."""


@hookspec
def register_neurons(register):
    """Register neurons: ``register(name, factory)``; ``factory(**options) -> nn.Module``
    that works on ``[T, N, ...]`` (step mode 'm') and ``[N, ...]`` (step mode 's')."""


@hookspec
def register_architectures(register):
    """Register architectures: ``register(name, builder)``; ``builder(*, neuron, num_classes,
    in_channels, input_size, width, **options) -> nn.Module``."""


@hookspec
def register_energy_models(register):
    """Register energy cost models: ``register(name, model)``; see ``spikingjelly_lt.energy``."""


@hookspec
def register_datasets(register):
    """Register data sets: ``register(name, loader)``; see ``spikingjelly_lt.data``."""
