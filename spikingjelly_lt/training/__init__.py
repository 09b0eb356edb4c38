"""Training one benchmark cell: the trainer, checkpoints, metrics."""

from .trainer import CellFailed, run_cell

__all__ = ["CellFailed", "run_cell"]
