"""Pruners in the ``torch.nn.utils.prune`` shape: ``pruner(model, sparsity, **opts) -> model``."""
