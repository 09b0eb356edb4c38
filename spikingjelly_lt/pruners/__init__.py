"""Pruners: :class:`~spikingjelly_lt.pruners.base.Pruner` subclasses registered by name, each
driven by the trainer through the lifecycle hooks of :mod:`~spikingjelly_lt.pruners.base`
(``apply``, ``param_groups``, ``rounds``, ``on_train_start``, ``on_step``, ``on_epoch_end``,
``on_round_end``, ``describe``). Built in: ``dense``, ``supermask`` (edge-popup / biprop),
``imp``, ``imp-et`` and ``eb`` (``early``), ``gmp``; ``magnitude`` and ``common`` hold what
they share. A plain function ``fn(model, sparsity, **options) -> model`` still registers,
adapted by :class:`~spikingjelly_lt.pruners.base.FunctionPruner` (one shot, one round)."""
