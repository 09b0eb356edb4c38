"""``--log-dir``: TensorBoard scalars of each cell, fed by the progress events."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .paths import check_output_dir

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """``--log-dir``: one TensorBoard run per cell (loss, train accuracy, lr, images/s per epoch;
    test top-1, firing rate, sparsity, energy at the end), fed by the progress events."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--log-dir writes TensorBoard scalars and needs the tensorboard package: "
                             "pip install 'spikingjelly-lt[tensorboard]' (or pip install tensorboard)") from None
        self.dir = check_output_dir(log_dir, "log dir")
        self._writer_cls = SummaryWriter
        self.writer = None
        self.epochs = 1

    def __call__(self, event: str, **info) -> None:
        if event == "start":
            c = info["cell"]
            self.close()
            name = f"{c.get('method')}_s{c.get('sparsity', 0):g}_seed{c.get('seed')}"
            self.writer = self._writer_cls(log_dir=str(self.dir / name))
            self.epochs = info.get("epochs") or 1
        elif self.writer is None:
            return
        elif event == "epoch":
            step = info["round"] * self.epochs + info["epoch"]
            for key in ("loss", "train_acc", "val_acc", "firing_rate", "lr", "images_per_s"):
                value = info.get(key)
                if isinstance(value, (list, tuple)):  # lr: one per optimizer / parameter group
                    for j, v in enumerate(value):
                        self.writer.add_scalar(f"train/{key}" + (f"_{j}" if len(value) > 1 else ""), float(v), step)
                elif isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", float(value), step)
        elif event == "measured":
            m = info.get("metrics") or {}
            for key in ("top1", "mean_firing_rate", "sparsity", "energy_pj", "train_seconds"):
                if isinstance(m.get(key), (int, float)):
                    self.writer.add_scalar(f"test/{key}", m[key], 0)
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
