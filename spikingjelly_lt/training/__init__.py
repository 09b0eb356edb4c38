"""Training one benchmark cell: config, trainer, checkpoints, metrics."""

from .config import CellConfig
from .trainer import CellFailed, run_cell

__all__ = ["CellConfig", "CellFailed", "run_cell"]
