"""Count MACs and ACs per prunable layer during one eval pass, and price them in pJ.

The counts come from our own forward hooks on every ``nn.Conv2d`` / ``nn.Linear``
(``prunable_layers``), not from SpikingJelly's ``op_counter``: op_counter intercepts
every aten op and calls ``.item()`` several times per op to decide whether a tensor is
binary (too slow for the trainer's eval pass), counts a direct-encoded first conv T
times, and does not know about weight masks. ``sj_adapter`` wraps it for a
cross-check only (tests compare its SynOps with ours where the rules coincide).

A layer's input kind is decided from its first batch that is not all zeros (one
sync per layer: ``aminmax`` plus the spike sums below); after that each hook does one
cheap reduction on the input (spikes: ``sum`` in float32 per chunk of at most 2**24
elements, exact for {0,1}; graded: ``count_nonzero``; static: a step-equality check),
plus ``dot(x, x)`` on the second spike batch as a {0,1} check. Results stay on the
device as one scalar per call (no ``.item()``, no copies) and are summed in float64
with one sync when the report is built. Overhead, counted / plain eval pass
(``bench/energy_overhead.py``, docs/performance.md): ~1.0 on ResNet-19 w0.25 over
1,000 CIFAR-10 test images, ~1.1 on 8x8 digits where the per-pass fixed cost
(``weight_stats`` of every layer) weighs more.

Counting rules (per image; ``dense`` = the layer's dense ops for one sample and one
step: conv ``k²·H_out·W_out·C_in·C_out/groups``, linear ``in·out``; ``d`` = weight
density ``count_nonzero(w)/numel`` of the effective weight; biases are not counted):

- ANN (root ``timesteps is None``), real input: ``MACs = dense · d`` (no zero skipping).
- ANN, input all ±1 (``sign`` neuron): every input adds or subtracts its weight,
  ``ACs = dense · d``.
- SNN (``timesteps`` set), spike input (all values in {0, 1}):
  ``ACs = dense · d · T · r_in`` with ``r_in`` the fraction of nonzero inputs over all
  T steps. This is the expected fan-out rule (design 2.6): for a linear layer it is
  exactly ``spikes · out``; for a stride-1 'same' conv it is ``spikes · k²·C_out/groups``,
  i.e. it charges border spikes the interior fan-out (op_counter's exact count
  charges them less).
- SNN, real input that is the same at every step (the direct-encoded image into the
  first conv): ``MACs = dense · d``, counted once, not T times.
- SNN, other real inputs (e.g. spikes after average pooling, values in [0, 1]):
  treated as graded events: zeros are skipped, each nonzero input needs a multiply:
  ``MACs = dense · d · T · r_in`` with ``r_in`` the nonzero fraction. With T = 1 the
  image cannot be told from a graded input, so it is counted this way too.

A layer's T is ``samples / N`` with N the batch the root module was called with, so
``[T, N, ...]`` inputs and T folded into N (``[T·N, ...]``) both work; a layer
called once per step in single-step mode counts each call as one step.

A layer's ``input_kind`` is ``spike``, ``static``, ``graded``, ``real`` or ``sign``
(``unused`` if it never ran) and its ``op_kind`` ``AC`` (spike, sign) or ``MAC``. If a
later batch contradicts the first one's kind, the report logs a warning. Per-image
figures are totals divided by the number of images the root module saw.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from ..errors import UsageError
from ..pruners.common import effective_weight, prunable_layers
from .cost_models import CostModel

__all__ = [
    "LayerEnergy",
    "EnergyReport",
    "EnergyCounter",
    "count_energy",
    "energy_under",
    "energy_ratio",
    "ratios",
    "resolve_cost_model",
    "weight_stats",
]

log = logging.getLogger("spikingjelly_lt")

_AC_KINDS = {"spike", "sign"}
_F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24


@dataclass(frozen=True)
class LayerEnergy:
    """One prunable layer's counts (per image, weight density applied) and energy."""

    name: str
    kind: str  # "conv" | "linear"
    input_shape: tuple[int, ...]  # first batch as seen by the layer ([T, N, ...] in step mode 'm')
    input_kind: str  # spike | static | graded | real | sign | unused
    op_kind: str  # AC | MAC | "-" (unused)
    macs: float
    acs: float
    weight_density: float
    firing_rate: float | None  # nonzero fraction of spike or graded inputs over all steps
    weight_bits: int  # 1 for binary (±alpha) weights, else 32
    mask_bits: int  # 1 for a pruned binary layer (a sign bit cannot encode zero), else 0
    weight_numel: int
    binary: bool
    energy_pj: float

    @property
    def stored_bits(self) -> int:
        """Bits of weight storage (read once per image by the ``*-mem`` models)."""
        return self.weight_numel * (self.weight_bits + self.mask_bits)


@dataclass(frozen=True)
class EnergyReport:
    """Per-image totals and per-layer rows of one eval pass, priced by ``model``."""

    model: str  # the cost model that priced energy_pj
    layers: tuple[LayerEnergy, ...]
    images: int
    timesteps: int | None
    macs: float
    acs: float
    energy_pj: float
    energy_mac_pj: float
    energy_ac_pj: float
    energy_mem_pj: float
    mean_firing_rate: float | None  # all input spikes / all input slots of spike-fed layers
    firing_rates: dict[str, float] = field(default_factory=dict)  # spike-fed layers only

    def to_dict(self) -> dict:
        """Plain JSON-able dict (layers as a list of dicts)."""
        d = asdict(self)
        d["layers"] = [dict(asdict(layer), stored_bits=layer.stored_bits) for layer in self.layers]
        return d


def resolve_cost_model(cost_model: str | CostModel) -> CostModel:
    """A ``CostModel`` as given, or the one registered under that name."""
    if isinstance(cost_model, CostModel):
        return cost_model
    from ..plugins import lookup

    return lookup("energy_models", cost_model)


def weight_stats(module: nn.Module) -> tuple[int, int, bool]:
    """``(numel, nonzeros, binary)`` of the weight that actually runs.

    Binary means every nonzero has the same magnitude (±alpha), with at least two nonzeros.
    One device sync, no boolean indexing: binary iff every nonzero is within 1e-6 of the
    largest magnitude.
    """
    a = effective_weight(module).abs()
    hi = a.max()
    nz, at_top = torch.stack([torch.count_nonzero(a), torch.count_nonzero(a >= hi * (1 - 1e-6))]).tolist()
    return a.numel(), nz, nz > 1 and at_top == nz


@dataclass
class _Acc:
    """Counts for one input geometry: python ints from shapes, device tensors from data."""

    numel: int = 0  # input elements seen
    samples: int = 0  # samples x steps seen
    images: int = 0  # samples / steps
    # device scalars, one per call, summed in float64 by the report (no per-call accumulate op)
    nnz: list[torch.Tensor] = field(default_factory=list)  # nonzero inputs (spike, graded)
    check: list[torch.Tensor] = field(default_factory=list)  # spike: x·x - sum(x); static: steps differ
    checks: int = 0  # spike batches verified so far


@dataclass
class _LayerState:
    name: str
    module: nn.Module
    kind: str
    per_position: int  # dense ops per output position (conv) or per sample (linear)
    input_kind: str | None = None  # decided on the first call that is not all zeros
    undecided: bool = False
    input_shape: tuple[int, ...] | None = None
    acc: dict[tuple[int, int], _Acc] = field(default_factory=dict)
    weights: tuple[int, int, bool] | None = None


def _totals(parts: list[list[torch.Tensor]]) -> list[float]:
    """Float64 sum of each list of device scalars, with one device sync for all of them.

    Exact for integer counts below 2**53 whatever the summation order.
    """
    owners = [i for i, ps in enumerate(parts) for _ in ps]
    flat = [p for ps in parts for p in ps]
    if not flat:
        return [0.0] * len(parts)
    device = flat[0].device
    totals = torch.zeros(len(parts), dtype=torch.float64, device=device)
    by_dtype: dict[torch.dtype, list[int]] = {}
    for j, p in enumerate(flat):
        by_dtype.setdefault(p.dtype, []).append(j)
    for js in by_dtype.values():
        values = torch.stack([flat[j] for j in js]).to(torch.float64)
        totals.index_add_(0, torch.tensor([owners[j] for j in js], device=device), values)
    return totals.tolist()


_SPIKE_CHECKS = 2  # batches per layer whose spikes are verified to be {0, 1} (the first exactly)


def _flat_chunks(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Contiguous 1-D views of ``x`` of at most 2**24 elements each (no copy if contiguous)."""
    flat = x.reshape(-1)
    return flat.split(_F32_EXACT) if flat.numel() > _F32_EXACT else (flat,)


def _spike_sums(x: torch.Tensor, check: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spike count of a {0,1} tensor and (if ``check``) a value that is 0 when it is {0,1}.

    ``sum(x)`` counts the spikes (much cheaper than ``count_nonzero`` on CPU), in float32
    per chunk of at most 2**24 elements (exact for {0,1}: every partial sum is an integer
    below 2**24) and float64 across chunks; a float64 sum of the whole tensor would first
    copy it to float64, which used to cost more than the layer's own conv. The check is
    ``x·x - sum(x)``, zero for {0,1} inputs, nonzero for any graded tensor that is not
    pathological (a float sum can round a tiny difference away).
    """
    if not x.is_floating_point():
        return x.sum(dtype=torch.int64), None
    chunks = _flat_chunks(x)
    sums = [c.sum(dtype=torch.float32) for c in chunks]
    total = sums[0] if len(sums) == 1 else torch.stack(sums).sum(dtype=torch.float64)
    if not check:
        return total, None
    if x.dtype != torch.float32:
        chunks = tuple(c.float() for c in chunks)
    dots = [torch.dot(c, c) for c in chunks]
    return total, (dots[0] if len(dots) == 1 else torch.stack(dots).sum(dtype=torch.float64)) - total


class EnergyCounter:
    """Context manager that counts ops of every forward pass of ``model`` inside it.

    Use it around the trainer's normal eval loop (the caller keeps doing
    ``reset_net`` and ``no_grad``)::

        with EnergyCounter(model) as counter:
            for x, y in loader:
                ...  # usual eval step
        report = counter.report()

    Counts accumulate over every forward call made while active (re-entering adds
    to them; ``reset()`` clears them). A layer's input kind is decided on its first
    call with a nonzero input (one sync per layer); later calls only reduce what that
    kind needs, plus a cheap consistency check that the report turns into a warning.
    """

    def __init__(self, model: nn.Module, cost_model: str | CostModel = "horowitz45") -> None:
        self.model = model
        self.cost_model = resolve_cost_model(cost_model)
        timesteps = getattr(model, "timesteps", None)
        self.timesteps: int | None = int(timesteps) if timesteps else None
        self.spiking = self.timesteps is not None
        self._states: list[_LayerState] = []
        for name, module in prunable_layers(model):
            if isinstance(module, nn.Conv2d):
                c_in = module.in_channels // module.groups
                per = module.out_channels * c_in * module.kernel_size[0] * module.kernel_size[1]
                self._states.append(_LayerState(name, module, "conv", per))
            else:
                per = module.in_features * module.out_features
                self._states.append(_LayerState(name, module, "linear", per))
        self._handles: list = []
        self._images = 0
        self._batch = 0  # images in the forward call now running

    # -- hooks ---------------------------------------------------------------
    def __enter__(self) -> EnergyCounter:
        if self._handles:
            raise RuntimeError("EnergyCounter is already active")
        self._handles.append(self.model.register_forward_pre_hook(self._count_images))
        for st in self._states:
            st.weights = None
            self._handles.append(st.module.register_forward_hook(self._make_hook(st)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for st in self._states:  # snapshot the weights that ran in this pass
            st.weights = weight_stats(st.module)

    def reset(self) -> None:
        """Forget all counts (the hooks stay attached if active)."""
        self._images = 0
        for st in self._states:
            st.acc.clear()
            st.input_kind = None
            st.undecided = False
            st.input_shape = None

    @property
    def images(self) -> int:
        return self._images

    def _count_images(self, module: nn.Module, args: tuple) -> None:
        if args and torch.is_tensor(args[0]):
            self._batch = int(args[0].shape[0])
            self._images += self._batch

    def _classify(self, x: torch.Tensor, steps: int) -> tuple[str, bool, torch.Tensor | None]:
        """``(kind, silent, spikes)`` of one input, with one device sync.

        ``silent`` (all zeros) fits every rule, so the caller decides again on the next
        call; ``spikes`` is the spike count when the kind is ``spike`` (reused, not redone).
        Spikes are inputs in [0, 1] with ``sum(x) == sum(x·x)``: exact for {0,1}, and a
        graded tensor passes only if the sum of ``v·(1-v)`` over its non-binary values is
        below float32 rounding of its sum (never for pooled spikes or real activations;
        an exact elementwise test costs ~10x more).
        """
        if not self.spiking:
            return ("sign" if bool(x.abs().eq_(1).all()) else "real"), False, None
        lo, hi = torch.aminmax(x if x.dtype != torch.bool else x.to(torch.uint8))
        if x.is_floating_point():
            spikes, check = _spike_sums(x, True)
            lo, hi, bad = torch.stack([lo.double(), hi.double(), check.double()]).tolist()
        else:  # integers in [0, 1] are {0, 1}
            spikes, bad = None, 0.0
            lo, hi = float(lo), float(hi)
        if lo == hi == 0:
            return "spike", True, spikes
        if lo >= 0 and hi <= 1 and bad == 0:
            return "spike", False, spikes
        xs = x.reshape(steps, -1)
        if steps > 1 and torch.equal(xs[1:], xs[:1].expand_as(xs[1:])):
            return "static", False, None
        return "graded", False, None

    def _make_hook(self, st: _LayerState):
        conv = st.kind == "conv"

        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = args[0]
            if conv:
                in_per = x.shape[-3] * x.shape[-2] * x.shape[-1]
                dense = st.per_position * out.shape[-2] * out.shape[-1]
            else:
                in_per = x.shape[-1]
                dense = st.per_position
            numel = x.numel()
            samples = numel // in_per
            steps = 1
            if self.spiking and self._batch and samples % self._batch == 0:
                steps = samples // self._batch  # [T, N, ...] or T folded into N
            acc = st.acc.get((dense, in_per))
            if acc is None:
                acc = st.acc[(dense, in_per)] = _Acc()
            acc.numel += numel
            acc.samples += samples
            acc.images += samples // steps
            nnz = None  # spike count, when the classification computed it
            with torch.no_grad():
                if st.input_kind is None or st.undecided:
                    st.input_kind, st.undecided, nnz = self._classify(x, steps)
                    st.input_shape = st.input_shape or tuple(x.shape)
                    acc.checks += st.input_kind == "spike" and not st.undecided  # verified
                kind = st.input_kind
                if kind == "spike":
                    if nnz is None:
                        verify = acc.checks < _SPIKE_CHECKS  # the first calls: a dot is a 2nd pass
                        nnz, check = _spike_sums(x, verify)
                        if check is not None:
                            acc.check.append(check)
                        acc.checks += verify
                    acc.nnz.append(nnz)
                elif kind == "graded":
                    acc.nnz.append(torch.count_nonzero(x))
                elif kind == "static":
                    xs = x.reshape(steps, -1)
                    acc.check.append((xs[1:] != xs[:1]).any())

        return hook

    # -- report --------------------------------------------------------------
    def report(
        self, cost_model: str | CostModel | None = None, *, images: int | None = None
    ) -> EnergyReport:
        """Per-image counts and energy under ``cost_model`` (default: the counter's)."""
        cm = resolve_cost_model(cost_model) if cost_model is not None else self.cost_model
        n_img = images if images is not None else self._images
        if n_img <= 0:
            raise UsageError("no images were counted: run the model inside the EnergyCounter first")
        # one device sync for the whole report (float64 holds every count exactly)
        pending = [(acc, slot) for st in self._states for acc in st.acc.values() for slot in ("nnz", "check")]
        values = _totals([getattr(acc, slot) for acc, slot in pending])
        got = {(id(acc), slot): v for (acc, slot), v in zip(pending, values)}

        rows: list[LayerEnergy] = []
        spikes_total = slots_total = 0
        firing: dict[str, float] = {}
        for st in self._states:
            numel, nonzero, binary = st.weights or weight_stats(st.module)
            density = nonzero / numel if numel else 0.0
            kind = st.input_kind or "unused"
            dense_ops = 0.0  # dense ops actually triggered, before weight density
            nnz_sum = numel_sum = 0
            bad = 0.0
            for (dense, in_per), acc in st.acc.items():
                nnz = round(got.get((id(acc), "nnz"), 0.0))
                check = got.get((id(acc), "check"), 0.0)
                if kind in ("spike", "graded"):
                    dense_ops += dense * nnz / in_per
                    nnz_sum += nnz
                    numel_sum += acc.numel
                    bad += abs(check) if kind == "spike" else 0.0
                elif kind == "static":
                    dense_ops += dense * acc.images
                    bad += check
                else:  # real, sign
                    dense_ops += dense * acc.samples
            if bad:
                log.warning(
                    "energy: layer %s was classified %r on its first batch but later inputs "
                    "were not; its counts follow the %r rule",
                    st.name, kind, kind,
                )  # fmt: skip
            rate = nnz_sum / numel_sum if numel_sum else None
            if kind == "spike" and numel_sum:
                firing[st.name] = rate
                spikes_total += nnz_sum
                slots_total += numel_sum
            is_ac = kind in _AC_KINDS
            rows.append(
                LayerEnergy(
                    name=st.name,
                    kind=st.kind,
                    input_shape=st.input_shape or (),
                    input_kind=kind,
                    op_kind="-" if kind == "unused" else ("AC" if is_ac else "MAC"),
                    macs=0.0 if is_ac else dense_ops * density / n_img,
                    acs=dense_ops * density / n_img if is_ac else 0.0,
                    weight_density=density,
                    firing_rate=rate,
                    weight_bits=1 if binary else 32,
                    mask_bits=1 if binary and nonzero < numel else 0,
                    weight_numel=numel,
                    binary=binary,
                    energy_pj=0.0,  # priced by _price
                )
            )
        report = _price(
            cm,
            rows,
            images=n_img,
            timesteps=self.timesteps,
            mean_firing_rate=spikes_total / slots_total if slots_total else None,
            firing_rates=firing,
        )
        log.debug(
            "energy[%s]: %d images, %.4g MACs + %.4g ACs per image = %.4g pJ",
            cm.name, n_img, report.macs, report.acs, report.energy_pj,
        )  # fmt: skip
        return report


def _price(cm: CostModel, rows: list[LayerEnergy], **rest) -> EnergyReport:
    parts = [cm.breakdown_pj(r) for r in rows]
    layers = tuple(replace(r, energy_pj=sum(p.values())) for r, p in zip(rows, parts))
    return EnergyReport(
        model=cm.name,
        layers=layers,
        macs=sum(r.macs for r in rows),
        acs=sum(r.acs for r in rows),
        energy_pj=sum(r.energy_pj for r in layers),
        energy_mac_pj=sum(p["mac"] for p in parts),
        energy_ac_pj=sum(p["ac"] for p in parts),
        energy_mem_pj=sum(p["mem"] for p in parts),
        **rest,
    )


def count_energy(
    model: nn.Module,
    batches: Iterable,
    cost_model: str | CostModel = "horowitz45",
    *,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
) -> EnergyReport:
    """One eval pass over ``batches`` (tensors or ``(x, y, ...)`` tuples) with counting.

    The model is put in eval mode (and restored), run under ``no_grad``, and a spiking
    model is reset with ``reset_net`` before and after every batch.
    """
    from .._sj import reset_net

    counter = EnergyCounter(model, cost_model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            for i, batch in enumerate(batches):
                if max_batches is not None and i >= max_batches:
                    break
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if device is not None:
                    x = x.to(device)
                if counter.spiking:
                    reset_net(model)
                model(x)
                if counter.spiking:
                    reset_net(model)
    finally:
        model.train(was_training)
    return counter.report()


def energy_under(report: EnergyReport, cost_model: str | CostModel) -> EnergyReport:
    """The same counts re-priced under another cost model (no rerun)."""
    cm = resolve_cost_model(cost_model)
    return _price(
        cm,
        list(report.layers),
        images=report.images,
        timesteps=report.timesteps,
        mean_firing_rate=report.mean_firing_rate,
        firing_rates=dict(report.firing_rates),
    )


def energy_ratio(
    baseline: EnergyReport, report: EnergyReport, cost_model: str | CostModel | None = None
) -> float:
    """How many times less energy ``report`` needs than ``baseline`` (``E_base / E``).

    Both are priced under ``cost_model`` (default: ``report``'s model), so reports
    priced under different models are never compared directly.
    """
    if cost_model is None and baseline.model == report.model:
        e_base, e = baseline.energy_pj, report.energy_pj
    else:
        cm = resolve_cost_model(cost_model if cost_model is not None else report.model)
        e_base, e = energy_under(baseline, cm).energy_pj, energy_under(report, cm).energy_pj
    return e_base / e if e > 0 else float("inf")


def ratios(
    report: EnergyReport,
    *,
    ann: EnergyReport | None = None,
    snn: EnergyReport | None = None,
    cost_model: str | CostModel | None = None,
) -> dict[str, float | None]:
    """``{"x_ann": E_ann/E, "x_snn": E_snn/E}`` (savings; ``None`` where no baseline)."""
    return {
        "x_ann": energy_ratio(ann, report, cost_model) if ann is not None else None,
        "x_snn": energy_ratio(snn, report, cost_model) if snn is not None else None,
    }
