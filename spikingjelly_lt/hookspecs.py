"""Hook specifications: every pruner, neuron, architecture, energy model and data set
(built-in or third-party) enters through one of these ``register_*(register)`` hooks."""

from pluggy import HookspecMarker

hookspec = HookspecMarker("spikingjelly_lt")


@hookspec
def register_pruners(register):
    """Register pruners: ``register(name, pruner)``.

    ``pruner`` is a :class:`~spikingjelly_lt.pruners.base.Pruner` subclass (the class, not
    an instance): the trainer makes one per cell and drives its lifecycle, ``apply(model,
    cell)`` once after the model is built, ``rounds(recipe)``, ``param_groups(model,
    recipe)`` per round, ``on_train_start`` / ``on_step`` / ``on_epoch_end`` (may end the
    round early) / ``on_round_end`` (prune, rewind; returns a ``RoundEnd``) with a
    ``TrainContext``, and ``describe()`` for the result row; ``uses`` names the cell keys
    it reads and ``self.state`` what a resume must restore. The old one-shot form, a
    function ``pruner(model, sparsity, **options) -> model`` in the ``torch.nn.utils.prune``
    shape, still registers (``FunctionPruner`` adapts it). Guide: docs/plugins.md."""


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
