"""asv benchmarks: error, energy, memory, search cost and speed of spikingjelly-lt per commit.

Grid: arch x method (``ARCHS`` x ``METHODS``), width 0.125, digits-sized inputs (1x8x8),
batch 32, T = 4. The methods: ``ann`` (dense ReLU net), ``snn`` (dense LIF net),
``binw-slt`` (BinW-SLT: a supermask searched over frozen binary weights, nothing
trained), ``snn-imp`` (SNN lottery ticket by iterative magnitude pruning, Kim et al.).

Two kinds of benchmark, told apart by name (``scripts/asv_gate.py`` relies on it):

- **timings**, ``time_*`` (asv measures seconds, many samples; judged with a noise band):
  ``TrainStep.time_train_step``, ``EvalStep.time_eval_step``; and one wall-clock value
  that is reported but never gated: ``TrainedCell.track_time_to_ticket``.
- **deterministic metrics**, every other ``track_*`` (compared exactly: any change is
  a change of the numerics, not noise): ``TrainStep.track_step_memory`` (bytes of
  weights + activations saved for backward in one train step), and from ONE short
  seeded training run per (arch, method) on ``digits`` (done once in ``setup_cache``):
  ``TrainedCell.track_error`` (100 - top-1, %), ``track_energy_pj`` (pJ per image),
  ``track_model_bits``. The run is far too short to be an accuracy claim.

Every benchmark carries a ``pretty_name`` (what the dashboard and ``asv compare`` show:
what, unit, which way is better) and a docstring (the dashboard's tooltip). Values are
rounded to what they resolve (no ``130499.00500000002``).

Environment knobs (read at import, so they also shape what asv discovers):

- ``SJLT_ASV_QUICK=1``: the CI grid, one arch x two methods (``vgg16`` x ``snn``, ``binw-slt``).
- ``SJLT_ASV_ARCHS`` / ``SJLT_ASV_METHODS``: comma lists that override the grid.
- ``SJLT_ASV_THREADS``: torch intra-op threads (default 1: the steadiest numbers on a
  shared machine).
- ``SJLT_ASV_SLOWDOWN=2``: TEST ONLY. Every ``time_*`` benchmark sleeps (factor - 1) x
  its own duration after each call, i.e. runs ``factor`` times slower; the gate's
  self-test (``scripts/asv_gate.py selftest``) uses it to prove a 2x slowdown is caught.

See docs/asv.md for how to run the suite.
"""

from __future__ import annotations

import math
import time
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
SLOWDOWN = float(os.environ.get("SJLT_ASV_SLOWDOWN", "") or 1.0)  # test only, see the module docstring

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

    def step_memory(self) -> dict[str, int]:
        """Bytes of the weights (parameters + buffers) and of the activations autograd
        saves for backward in one train-mode forward pass of the fixed batch.

        Counted per storage (a tensor saved twice, or a weight autograd saves, counts
        once), so the number is the model's own memory for one step, independent of the
        interpreter, torch's allocator and whatever else the process holds (which is
        what a peak-RSS number is mostly made of).
        """
        import torch
        import torch.nn.functional as F

        from spikingjelly_lt._sj import reset_net

        def storages(tensors) -> dict[int, int]:
            return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}

        weights = storages(list(self.model.parameters()) + list(self.model.buffers()))
        saved: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            saved[st.data_ptr()] = st.nbytes()
            return t

        self.model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(self.model(self.x), self.y)
        del loss
        reset_net(self.model)
        activations = {ptr: n for ptr, n in saved.items() if ptr not in weights}
        return {"weights": sum(weights.values()), "activations": sum(activations.values())}


def _slowed(step) -> None:
    """Run step(); under SJLT_ASV_SLOWDOWN=f (test only) take f times as long."""
    if SLOWDOWN <= 1.0:
        step()
        return
    t0 = time.perf_counter()
    step()
    time.sleep((SLOWDOWN - 1.0) * (time.perf_counter() - t0))


# seconds per step benchmark process, setup included: the first process of a fresh
# checkout (or TORCH_EXTENSIONS_DIR) compiles the package's C++ kernels in setup
STEP_TIMEOUT = 600


class TrainStep:
    """One optimizer step of the (arch, method) net on a fixed random batch of 32
    1x8x8 images, T = 4: forward, cross-entropy, backward, optimizer step, reset_net."""

    params = (ARCHS, METHODS)
    param_names = ("arch", "method")
    timeout = STEP_TIMEOUT
    warmup_time = 0.3
    # samples per asv run: at least 5, at most 20, at most 3 s of them; a step takes
    # 10-50 ms, so `number` (calls per sample) comes out as 1
    repeat = (5, 20, 3.0)

    def setup(self, arch: str, method: str) -> None:
        self.fx = _StepFixture(arch, method)
        self.fx.train_step()  # first call allocates; keep it out of the timings

    def time_train_step(self, arch: str, method: str) -> None:
        """Wall time of one train step (s per step, batch 32, T = 4; lower is better)."""
        _slowed(self.fx.train_step)

    time_train_step.pretty_name = "train step: s per batch, lower is better"

    def track_step_memory(self, arch: str, method: str) -> int:
        """Bytes of one train step's model memory: weights (parameters + buffers) plus the
        activations autograd saves for backward (batch 32, T = 4; lower is better).
        Deterministic: any change is a change of the model or of what it keeps."""
        mem = self.fx.step_memory()
        return int(mem["weights"] + mem["activations"])

    track_step_memory.unit = "bytes"
    track_step_memory.pretty_name = "memory: weights + activations, lower is better"


class EvalStep:
    """One inference pass (eval mode, no grad) + reset_net of the (arch, method) net on
    a fixed random batch of 32 1x8x8 images, T = 4."""

    params = (ARCHS, METHODS)
    param_names = ("arch", "method")
    timeout = STEP_TIMEOUT
    warmup_time = 0.3
    repeat = (5, 20, 3.0)

    def setup(self, arch: str, method: str) -> None:
        self.fx = _StepFixture(arch, method)
        self.fx.eval_step()

    def time_eval_step(self, arch: str, method: str) -> None:
        """Wall time of one inference pass (s per batch of 32, T = 4; lower is better)."""
        _slowed(self.fx.eval_step)

    time_eval_step.pretty_name = "inference: s per batch, lower is better"


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
    """Metrics of one short seeded training run per (arch, method) on digits: 2 epochs
    over 1,024 training images, all 360 test images (IMP: one prune-rewind round).
    Seeded and deterministic on CPU, so error, energy and bits are exact fingerprints
    of the numerics; far too short to be an accuracy claim."""

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
        """Test error = 100 - top-1 accuracy, in % of the 360 digits test images, after
        the short training run (lower is better; chance is 90 %)."""
        return round(100.0 * (1.0 - _finite(self.cell["top1"], "top1")), 2)

    track_error.unit = "%"
    track_error.pretty_name = "error % = 100 - top-1, lower is better"

    def track_energy_pj(self, cells: dict, arch: str, method: str) -> float:
        """Inference energy per test image in picojoules (horowitz45 model: 45 nm
        operation costs x counted operations; lower is better)."""
        return round(_finite(self.cell["energy_pj"], "energy_pj"), 3)

    track_energy_pj.unit = "pJ/image"
    track_energy_pj.pretty_name = "energy: pJ per image, lower is better"

    def track_time_to_ticket(self, cells: dict, arch: str, method: str) -> float:
        """Training wall time until the ticket exists, in seconds (IMP: all rounds;
        lower is better). One wall-clock sample per run: shown, never gated."""
        return round(_finite(self.cell["time_to_ticket_s"], "time_to_ticket_s"), 3)

    track_time_to_ticket.unit = "s"
    track_time_to_ticket.pretty_name = "time to ticket: s, lower is better"

    def track_model_bits(self, cells: dict, arch: str, method: str) -> int:
        """Bits to ship the weights that run: each prunable layer in its cheapest
        stored format (dense or mask + values; a binary weight is 1 bit), other floating
        parameters and buffers 32 bits (energy.storage.model_storage; lower is better)."""
        return int(round(8.0 * _finite(self.cell["model_bytes"], "model_bytes")))

    track_model_bits.unit = "bits"
    track_model_bits.pretty_name = "model size: bits, lower is better"
