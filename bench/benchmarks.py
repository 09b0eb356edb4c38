"""asv benchmarks: error, energy, search cost and throughput of spikingjelly-lt per commit.

Grid: arch x method (``ARCHS`` x ``METHODS``), width 0.125, digits-sized inputs (1x8x8),
batch 32, T = 4.

- ``TrainStep.time_train_step`` / ``TrainStep.peakmem_train_step`` / ``EvalStep.time_eval_step``:
  one optimizer step / one inference pass on a fixed random batch.
- ``TrainedCell.track_*``: error (%), energy (pJ per image), time to ticket (s) and model
  size (bits), all from ONE short seeded training run per (arch, method) on ``digits``,
  done once in ``setup_cache``. Training is seeded and deterministic on CPU, so error,
  energy and size are exact fingerprints of the numerics: any change between two
  commits is a real change. The run is far too short to be an accuracy claim.

Environment knobs (read at import, so they also shape what asv discovers):

- ``SJLT_ASV_QUICK=1``: the CI grid, one arch x two methods (``vgg16`` x ``snn``, ``binw-slt``).
- ``SJLT_ASV_ARCHS`` / ``SJLT_ASV_METHODS``: comma lists that override the grid.
- ``SJLT_ASV_THREADS``: torch intra-op threads (default 1: the steadiest numbers on a
  shared machine).

See docs/asv.md for how to run the suite.
"""

from __future__ import annotations

import math
import os
import traceback

QUICK = os.environ.get("SJLT_ASV_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def _grid(var: str, full: tuple[str, ...], quick: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(var, "").strip()
    if value:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return quick if QUICK else full


ARCHS = _grid("SJLT_ASV_ARCHS", ("resnet19", "vgg16"), ("vgg16",))
METHODS = _grid("SJLT_ASV_METHODS", ("ann", "snn", "binw-slt", "snn-imp"), ("snn", "binw-slt"))
THREADS = int(os.environ.get("SJLT_ASV_THREADS", "1"))

# the step benchmarks: digits-sized input, small width, the design's default T
WIDTH = 0.125
INPUT_SIZE = 8
IN_CHANNELS = 1
NUM_CLASSES = 10
BATCH = 32
TIMESTEPS = 4
SPARSITY = 0.5

# the tracked training run: 2 epochs x 32 steps, ~1-10 s per cell on one CPU core
# (about 40 s for the full grid); short, but long enough that most cells leave chance
CELL = dict(
    dataset="digits",
    sparsity=SPARSITY,
    seed=0,
    timesteps=TIMESTEPS,
    epochs=2,
    width=WIDTH,
    batch_size=BATCH,
    limit_train=1024,
    limit_test=None,  # all 360 digits test images
    fc_bn=True,
    learn_bn=True,
    v_threshold=0.5,  # the smoke recipe: at width 0.125 a threshold of 1.0 falls silent
    imp_rounds=1,
    rewind_epoch=0,
)


def _threads() -> None:
    import torch

    torch.set_num_threads(THREADS)


def cell_config(arch: str, method: str):
    """The Cell of the tracked run for (arch, method)."""
    from spikingjelly_lt.cell import Cell

    return Cell().replace(arch=arch, method=method, **CELL)


class _StepFixture:
    """A model for (arch, method), its optimizer and a fixed random batch."""

    def __init__(self, arch: str, method: str):
        import torch

        from spikingjelly_lt.build import DataShape, build_model
        from spikingjelly_lt.methods import resolve
        from spikingjelly_lt.pruners import magnitude
        from spikingjelly_lt.training.trainer import Optimizers

        _threads()
        r = resolve(cell_config(arch, method))
        self.model = build_model(r, DataShape(NUM_CLASSES, IN_CHANNELS, INPUT_SIZE))
        if magnitude.masked_layers(self.model):
            # IMP-style pruners start dense; time the masked net their later rounds train
            magnitude.prune_to(self.model, SPARSITY)
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(BATCH, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE, generator=g)
        self.y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
        self.opt = Optimizers(r.pruner.param_groups(self.model, r.cell.recipe), total_steps=1000)

    def train_step(self) -> None:
        import torch.nn.functional as F

        from spikingjelly_lt._sj import reset_net

        self.model.train()
        out = self.model(self.x)
        loss = F.cross_entropy(out, self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        reset_net(self.model)

    def eval_step(self) -> None:
        import torch

        from spikingjelly_lt._sj import reset_net

        self.model.eval()
        with torch.no_grad():
            self.model(self.x)
        reset_net(self.model)


class TrainStep:
    """Forward + cross-entropy + backward + optimizer step + reset_net, batch 32."""

    params = (ARCHS, METHODS)
    param_names = ("arch", "method")
    timeout = 180
    warmup_time = 0.5
    repeat = (1, 10, 5.0)  # min repeats, max repeats, max seconds per benchmark

    def setup(self, arch: str, method: str) -> None:
        self.fx = _StepFixture(arch, method)
        self.fx.train_step()  # first call allocates; keep it out of the timings

    def time_train_step(self, arch: str, method: str) -> None:
        self.fx.train_step()

    def peakmem_train_step(self, arch: str, method: str) -> None:
        self.fx.train_step()


class EvalStep:
    """One inference pass (no grad, eval mode) + reset_net, batch 32."""

    params = (ARCHS, METHODS)
    param_names = ("arch", "method")
    timeout = 180
    warmup_time = 0.5
    repeat = (1, 10, 5.0)

    def setup(self, arch: str, method: str) -> None:
        self.fx = _StepFixture(arch, method)
        self.fx.eval_step()

    def time_eval_step(self, arch: str, method: str) -> None:
        self.fx.eval_step()


_KEYS = ("top1", "energy_pj", "time_to_ticket_s", "model_bytes", "weight_bits", "sparsity",
         "mean_firing_rate", "train_seconds")


def train_cells(archs=ARCHS, methods=METHODS) -> dict:
    """One seeded training run per (arch, method); a failed cell keeps its traceback."""
    from spikingjelly_lt.training import run_cell

    _threads()
    out: dict = {}
    for arch in archs:
        for method in methods:
            try:
                metrics = run_cell(cell_config(arch, method))
                out[(arch, method)] = {k: metrics.get(k) for k in _KEYS}
            except Exception:  # noqa: BLE001 - reported by the cell's benchmarks
                out[(arch, method)] = {"error": traceback.format_exc()}
    return out


def _finite(value, what: str) -> float:
    if value is None or not math.isfinite(float(value)):
        raise ValueError(f"{what} is {value!r}, expected a finite number")
    return float(value)


class TrainedCell:
    """Metrics of one short digits training run per (arch, method) (see CELL)."""

    params = (ARCHS, METHODS)
    param_names = ("arch", "method")
    timeout = 60

    def setup_cache(self) -> dict:
        return train_cells()

    setup_cache.timeout = 1800

    def setup(self, cells: dict, arch: str, method: str) -> None:
        cell = cells.get((arch, method))
        if cell is None:
            raise RuntimeError(f"no trained cell for ({arch}, {method}): the grid changed between setup_cache and the run")
        if "error" in cell:
            raise RuntimeError(f"training ({arch}, {method}) failed:\n{cell['error']}")
        self.cell = cell

    def track_error(self, cells: dict, arch: str, method: str) -> float:
        return 100.0 * (1.0 - _finite(self.cell["top1"], "top1"))

    track_error.unit = "%"

    def track_energy_pj(self, cells: dict, arch: str, method: str) -> float:
        return _finite(self.cell["energy_pj"], "energy_pj")

    track_energy_pj.unit = "pJ/image"

    def track_time_to_ticket(self, cells: dict, arch: str, method: str) -> float:
        return _finite(self.cell["time_to_ticket_s"], "time_to_ticket_s")

    track_time_to_ticket.unit = "s"

    def track_model_bits(self, cells: dict, arch: str, method: str) -> float:
        return 8.0 * _finite(self.cell["model_bytes"], "model_bytes")

    track_model_bits.unit = "bits"
