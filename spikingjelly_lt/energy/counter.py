"""Count synaptic ops, neuron updates and weight storage during one eval pass; price them.

Works on any torch or SpikingJelly model (ours, a user's ``layer.*`` / ``neuron.*``
net in step mode 's' or 'm', a plain ANN). The written rule set is docs/energy.md
(``RULES`` names its version; every report carries it); each rule's one-line
docstring is at the function that applies it (``_rule_*`` below). In short, per
image, with ``G`` the exact fan-out of every input position through the layer's
nonzero weights (``_fanout``) and ``dense`` its dense ops per sample and step
(conv ``k²·H_out·W_out·C_in·C_out/groups``, linear ``in·out``), ``d`` = weight
density of the running weight, biases not counted:

- ``spike`` input (from a neuron node, or {0, 1} values in a spiking model): ACs =
  Σ spikes x fan-out = ``⟨S, G⟩`` (exact event count, = ``T·r·dense·d`` on average).
- ``static`` input (hinted by the model, e.g. ``Network``'s encoder, or the same real
  input at every step of a multi-step call): MACs = ``dense·d`` once per image.
- ``pooled`` input (an average pool of spikes) into a linear/conv: option
  ``pooled_fc``: ``"ac"`` (default; docs/energy.md §3, Kim et al.) ACs = ``T·r·dense·d`` with
  ``r`` the rate of the spikes entering the pool; ``"mac"`` MACs as ``graded``.
- ``graded`` input (other real values in a spiking model): MACs = ``⟨NZ, G⟩`` (each
  nonzero input multiplies into every synapse it reaches).
- ANN ``real`` input: MACs = ``dense·d`` per sample; ANN ``sign`` (all ±1): ACs = ``dense·d``.
- neurons: every SpikingJelly node (``BaseNode`` subclasses, our ``FastLIFNode``) counts
  ``T x neurons`` updates per image with its ops per update (``_neuron_ops``); ReLU / sign
  count one compare per element.

T and N come from the model: a root with ``timesteps`` (``Network``) takes ``[N, ...]``;
otherwise the first neuron node of a call tells them (step mode 'm': input
``[T, N, ...]``; step mode 's': one step per call, a new image when its state was
reset), or ``timesteps=`` is given. A layer's input kind is decided on its first call
with a nonzero input (one sync), then each call does one cheap reduction (spikes and
graded: a sum over the leading dims into a per-position map; static: a step-equality
check), results staying on the device until the report (one sync). Overhead:
``bench/energy_overhead.py``, docs/performance.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..pruners.common import effective_weight, prunable_layers
from .cost_models import CostModel
# the report and its pricing (re-exported here for callers of counter)
from .report import (RULES, EnergyReport, LayerEnergy, NeuronEnergy, _price, energy_ratio, energy_under,
                     resolve_cost_model)
from .storage import layer_storage, weight_stats

__all__ = [
    "RULES",
    "POOLED_FC",
    "LayerEnergy",
    "NeuronEnergy",
    "EnergyReport",
    "EnergyCounter",
    "count_energy",
    "energy_under",
    "energy_ratio",
    "resolve_cost_model",
    "weight_stats",
    "is_neuron_node",
]

log = logging.getLogger("spikingjelly_lt")

POOLED_FC = ("ac", "mac")
_AC_KINDS = {"spike", "sign"}
_F32_EXACT = 1 << 24  # float32 holds every integer up to 2**24
_SPIKE_CHECKS = 2  # batches per layer whose spikes are verified to be {0, 1} (the first exactly)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
              nn.AdaptiveAvgPool3d)
_SPIKE = ("spike",)


def is_neuron_node(module: nn.Module) -> bool:
    """A SpikingJelly neuron node: a ``BaseNode`` subclass, or a memory module with a threshold."""
    from .._sj import base, neuron

    return isinstance(module, neuron.BaseNode) or (
        isinstance(module, base.MemoryModule) and hasattr(module, "v_threshold")
    )


def _neuron_ops(module: nn.Module) -> tuple[str, int, int]:
    """Rule ``neuron``: ``(kind, adds, mults)`` of one charge step; + 1 compare, 1 reset each.

    LIF ``V + (X - (V - V_r))/tau`` (either decay_input): 2 adds + 1 multiply by 1/tau
    (V_r = 0; a nonzero V_r is one more add); IF ``V + X``: 1 add; parametric LIF as LIF;
    any other node is charged as a LIF.
    """
    from .._sj import neuron

    name = type(module).__name__.lower()
    v_r = getattr(module, "v_reset", None)
    extra = 1 if v_r not in (None, 0, 0.0) else 0
    if isinstance(module, neuron.IFNode):
        return "if", 1, 0
    if isinstance(module, neuron.ParametricLIFNode):
        return "plif", 2 + extra, 1
    if isinstance(module, neuron.LIFNode) or "lif" in name:
        return "lif", 2 + extra, 1
    return "node", 2 + extra, 1


def _ptr(x: torch.Tensor) -> int:
    return x.untyped_storage().data_ptr()


@dataclass
class _Acc:
    """Counts for one input geometry: python ints from shapes, device tensors from data."""

    numel: int = 0  # input elements seen
    samples: int = 0  # samples x steps seen
    images: int = 0  # samples / steps (static rule)
    in_shape: tuple[int, ...] = ()  # per-sample input shape: (C, H, W) or (features,)
    dense: int = 0  # dense ops per sample and step
    rate_nnz: list[torch.Tensor] = field(default_factory=list)  # spike / nonzero counts (rates)
    map: torch.Tensor | None = None  # float64 per-position sum of spikes (or nonzeros)
    pool_nnz: list[torch.Tensor] = field(default_factory=list)  # pooled: spikes into the pool
    pool_numel: int = 0  # pooled: elements into the pool
    check: list[torch.Tensor] = field(default_factory=list)  # spike: x·x - sum(x); static: steps differ
    checks: int = 0  # spike batches verified so far


@dataclass
class _LayerState:
    name: str
    module: nn.Module
    kind: str
    per_position: int  # dense ops per output position (conv) or per sample (linear)
    hint: str | None = None  # "static" when the model says so
    input_kind: str | None = None  # decided on the first call that is not all zeros
    undecided: bool = False
    input_shape: tuple[int, ...] | None = None
    acc: dict[tuple, _Acc] = field(default_factory=dict)
    weights: tuple[int, int, bool] | None = None
    fanout: dict[tuple, torch.Tensor] = field(default_factory=dict)


@dataclass
class _NodeState:
    name: str
    module: nn.Module
    kind: str
    adds: int
    mults: int
    compares: int
    resets: int
    stateful: bool
    updates: int = 0
    bits: int = 32


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


def _flat_chunks(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Contiguous 1-D views of ``x`` of at most 2**24 elements each (no copy if contiguous)."""
    flat = x.reshape(-1)
    return flat.split(_F32_EXACT) if flat.numel() > _F32_EXACT else (flat,)


def _spike_sums(x: torch.Tensor, check: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spike count of a {0,1} tensor and (if ``check``) a value that is 0 when it is {0,1}.

    ``sum(x)`` in float32 per chunk of at most 2**24 elements (exact for {0,1}) and
    float64 across chunks. The check is ``x·x - sum(x)``, zero for {0,1} inputs, nonzero
    for any graded tensor that is not pathological (a float sum can round a tiny
    difference away).
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


_ONES: dict[tuple, torch.Tensor] = {}


def _position_map(x: torch.Tensor, per_sample_dims: int) -> torch.Tensor:
    """Sum of ``x`` over its leading (sample, step) dims: one float32 value per input position.

    A ``ones @ x`` GEMV over the flattened leading dims (faster on CPU than ``sum(0)``
    and than a full ``sum``), float32 throughout: exact for {0,1} inputs (and 0/1
    nonzero indicators) while samples x steps per call stay below 2**24. A
    channels_last conv input is summed in its memory order and permuted back (no copy).
    """
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    lead = x.dim() - per_sample_dims
    if lead <= 0:
        return x
    shape = x.shape[lead:]
    if x.is_contiguous():
        flat, back = x.reshape(-1, shape.numel()), None
    elif x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        flat, back = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), (shape[1], shape[2], shape[0])
    else:
        return x.sum(dim=tuple(range(lead)))
    key = (flat.shape[0], flat.device)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = torch.ones(flat.shape[0], dtype=torch.float32, device=flat.device)
    with torch.autocast(flat.device.type, enabled=False):  # under a bf16 eval the GEMV would round counts
        m = ones @ flat
    return m.reshape(shape) if back is None else m.reshape(back).permute(2, 0, 1)


def _fanout(module: nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Exact fan-out of every input position: how many nonzero synapses it feeds (float64).

    Conv: the gradient of ``sum(conv(ones, w != 0))`` w.r.t. the input (padding, stride,
    dilation, groups and padding mode included); linear: nonzeros per weight column.
    """
    w = effective_weight(module)
    b = (w != 0).to(torch.float32)
    if isinstance(module, nn.Linear):
        return b.sum(0).double()
    x = torch.ones((1, *in_shape), dtype=torch.float32, device=w.device, requires_grad=True)
    with torch.enable_grad():
        if module.padding_mode != "zeros":
            xp = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
            y = F.conv2d(xp, b, None, module.stride, 0, module.dilation, module.groups)
        else:
            y = F.conv2d(x, b, None, module.stride, module.padding, module.dilation, module.groups)
        (g,) = torch.autograd.grad(y.sum(), x)
    return g[0].double()


class EnergyCounter:
    """Context manager that counts ops of every forward pass of ``model`` inside it.

    Use it around the trainer's normal eval loop (the caller keeps doing
    ``reset_net`` and ``no_grad``)::

        with EnergyCounter(model) as counter:
            for x, y in loader:
                ...  # usual eval step
        report = counter.report()

    ``timesteps``: T when the model cannot tell (a single-step net driven T times per
    image); ``pooled_fc``: ``"ac"`` (default) or ``"mac"``, how a layer fed by pooled
    spikes is counted (docs/energy.md). Counts accumulate over every forward call made
    while active (re-entering adds to them; ``reset()`` clears them).
    """

    def __init__(
        self,
        model: nn.Module,
        cost_model: str | CostModel = "horowitz45",
        *,
        timesteps: int | None = None,
        pooled_fc: str = "ac",
    ) -> None:
        if pooled_fc not in POOLED_FC:
            raise UsageError(f"pooled_fc must be one of {', '.join(POOLED_FC)}, not {pooled_fc!r}")
        from ..neuron.neurons import Sign

        self.model = model
        self.cost_model = resolve_cost_model(cost_model)
        self.pooled_fc = pooled_fc
        root_t = getattr(model, "timesteps", None)
        self._root_t: int | None = int(root_t) if root_t else None  # root takes [N, ...]
        self._given_t: int | None = int(timesteps) if timesteps else None
        self._nodes: list[_NodeState] = []
        for name, module in model.named_modules():
            if is_neuron_node(module):
                kind, adds, mults = _neuron_ops(module)
                self._nodes.append(_NodeState(name, module, kind, adds, mults, 1, 1, True))
            elif isinstance(module, (nn.ReLU, Sign)):
                kind = "sign" if isinstance(module, Sign) else "relu"
                self._nodes.append(_NodeState(name, module, kind, 0, 0, 1, 0, False))
        self.spiking = bool(self._given_t or self._root_t or any(n.stateful for n in self._nodes))
        modes = {getattr(n.module, "step_mode", "s") for n in self._nodes if n.stateful}
        self.single_step = not self._root_t and modes == {"s"}
        self.timesteps: int | None = self._given_t or self._root_t
        static = tuple(getattr(model, "energy_static", ()) or ())
        self._states: list[_LayerState] = []
        for name, module in prunable_layers(model):
            hint = getattr(module, "sjlt_energy_input", None)
            if hint is None and any(name == p or name.startswith(p + ".") for p in static):
                hint = "static"
            if isinstance(module, nn.Conv2d):
                c_in = module.in_channels // module.groups
                per = module.out_channels * c_in * module.kernel_size[0] * module.kernel_size[1]
                self._states.append(_LayerState(name, module, "conv", per, hint))
            else:
                per = module.in_features * module.out_features
                self._states.append(_LayerState(name, module, "linear", per, hint))
        self._pools = [m for m in model.modules() if isinstance(m, _AVG_POOLS)]
        self._handles: list = []
        self._images = 0.0
        self._calls = 0
        self._sequences = 0  # single-step: fresh starts of the first node
        self._steps_seen: int | None = None  # step mode 'm': T of the first node's input
        self._root_shape: tuple[int, ...] = ()
        self._first: tuple[str, tuple[int, ...], bool] | None = None
        self._tags: dict[int, tuple] = {}  # storage pointer -> producer (this call only)

    # -- hooks ---------------------------------------------------------------
    def __enter__(self) -> EnergyCounter:
        if self._handles:
            raise RuntimeError("EnergyCounter is already active")
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre))
        self._handles.append(self.model.register_forward_hook(self._root_post))
        for node in self._nodes:
            if node.stateful:
                self._handles.append(node.module.register_forward_pre_hook(self._node_pre))
            self._handles.append(node.module.register_forward_hook(self._make_node_hook(node)))
        for pool in self._pools:
            self._handles.append(pool.register_forward_hook(self._pool_hook))
        for st in self._states:
            st.weights = None
            self._handles.append(st.module.register_forward_hook(self._make_hook(st)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._tags.clear()
        for st in self._states:  # snapshot the weights that ran in this pass
            st.weights = weight_stats(st.module)
            st.fanout = {key: _fanout(st.module, acc.in_shape) for key, acc in st.acc.items() if acc.map is not None}

    def reset(self) -> None:
        """Forget all counts (the hooks stay attached if active)."""
        self._images = 0.0
        self._calls = self._sequences = 0
        for st in self._states:
            st.acc.clear()
            st.fanout.clear()
            st.input_kind = None
            st.undecided = False
            st.input_shape = None
        for node in self._nodes:
            node.updates = 0

    @property
    def images(self) -> int:
        return int(round(self._images))

    def _root_pre(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args and torch.is_tensor(args[0]) else None
        self._root_shape = tuple(x.shape) if x is not None else ()
        self._first = None
        self._tags.clear()

    def _root_post(self, module: nn.Module, args: tuple, out) -> None:
        self._calls += 1
        self._images += self._call_images()
        self._tags.clear()

    def _call_images(self) -> float:
        """Images of the root call just finished (rule ``images``, docs/energy.md)."""
        shape = self._root_shape
        if self._root_t:  # Network: [N, ...], T steps inside
            return shape[0] if shape else 0
        if self._first is not None:
            mode, nshape, fresh = self._first
            if mode == "m" and len(nshape) >= 2:  # [T, N, ...]
                self._steps_seen = nshape[0]
                return nshape[1]
            if self._given_t:  # single-step, T given: every call is 1/T of a sequence
                return nshape[0] / self._given_t
            if fresh:
                self._sequences += 1
                return nshape[0]
            return 0
        if self._given_t and len(shape) >= 2 and shape[0] == self._given_t:
            return shape[1]  # [T, N, ...] into a net without neuron nodes
        return shape[0] if shape else 0

    def _node_pre(self, module: nn.Module, args: tuple) -> None:
        if self._first is None and args and torch.is_tensor(args[0]):
            fresh = not torch.is_tensor(getattr(module, "v", None))
            self._first = (getattr(module, "step_mode", "s"), tuple(args[0].shape), fresh)

    def _make_node_hook(self, node: _NodeState):
        def hook(module: nn.Module, args: tuple, out) -> None:
            if not torch.is_tensor(out):
                return
            node.updates += out.numel()
            if node.stateful:
                x = args[0] if args and torch.is_tensor(args[0]) else out
                node.bits = x.element_size() * 8
                self._tags[_ptr(out)] = _SPIKE

        return hook

    def _pool_hook(self, module: nn.Module, args: tuple, out) -> None:
        x = args[0] if args else None
        if torch.is_tensor(x) and torch.is_tensor(out) and self._tags.get(_ptr(x)) is _SPIKE:
            self._tags[_ptr(out)] = ("pooled", _spike_sums(x, False)[0], x.numel())

    def _classify(self, x: torch.Tensor, steps: int, tagged: bool) -> tuple[str, bool]:
        """``(kind, silent)`` of one input, with one device sync (rule ``kind``).

        ANN: ``sign`` if all ±1, else ``real``. Spiking: ``spike`` if in [0, 1] with
        ``sum(x) == sum(x·x)`` (a neuron's all-zero output is a silent spike input);
        ``static`` if every step of the call is the same; else ``graded``. ``silent``
        (all zeros, not from a neuron) fits every rule, so the caller decides again later.
        """
        if not self.spiking:
            return ("sign" if bool(x.abs().eq_(1).all()) else "real"), False
        lo, hi = torch.aminmax(x if x.dtype != torch.bool else x.to(torch.uint8))
        if x.is_floating_point():
            _, check = _spike_sums(x, True)
            lo, hi, bad = torch.stack([lo.double(), hi.double(), check.double()]).tolist()
        else:  # integers in [0, 1] are {0, 1}
            bad = 0.0
            lo, hi = float(lo), float(hi)
        if lo == hi == 0:
            return "spike", not tagged
        if lo >= 0 and hi <= 1 and bad == 0:
            return "spike", False
        if tagged:
            log.warning("energy: an input from a neuron node is not {0, 1}; counted as graded")
        xs = x.reshape(steps, -1)
        if steps > 1 and torch.equal(xs[1:], xs[:1].expand_as(xs[1:])):
            return "static", False
        return "graded", False

    def _make_hook(self, st: _LayerState):
        conv = st.kind == "conv"
        per_sample_dims = 3 if conv else 1
        stepped = getattr(st.module, "step_mode", "s") == "m"

        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = args[0]
            if conv:
                in_shape = tuple(x.shape[-3:])
                dense = st.per_position * out.shape[-2] * out.shape[-1]
            else:
                in_shape = (x.shape[-1],)
                dense = st.per_position
            in_per = 1
            for s in in_shape:
                in_per *= s
            numel = x.numel()
            samples = numel // in_per
            if stepped and x.dim() == per_sample_dims + 2:
                steps = x.shape[0]  # [T, N, ...]
            else:
                n_root = self._root_shape[0] if self._root_shape and self._root_t else 0
                steps = samples // n_root if n_root and samples % n_root == 0 else 1
            key = (in_shape, dense)
            acc = st.acc.get(key)
            if acc is None:
                acc = st.acc[key] = _Acc(in_shape=in_shape, dense=dense)
            acc.numel += numel
            acc.samples += samples
            acc.images += samples // steps
            tag = self._tags.get(_ptr(x))
            verified = False
            with torch.no_grad():
                if st.input_kind is None or st.undecided:
                    st.input_shape = st.input_shape or tuple(x.shape)
                    if st.hint == "static" and self.spiking:  # an ANN input is per image anyway
                        st.input_kind, st.undecided = "static", False
                    elif tag is not None and tag[0] == "pooled":
                        st.input_kind, st.undecided = "pooled", False
                    else:
                        st.input_kind, st.undecided = self._classify(x, steps, tag is _SPIKE)
                        verified = self.spiking
                kind = st.input_kind
                if kind == "spike":
                    if verified:
                        acc.checks += 1
                    elif acc.checks < _SPIKE_CHECKS and x.is_floating_point():
                        acc.check.append(_spike_sums(x, True)[1])
                        acc.checks += 1
                    m = _position_map(x, per_sample_dims)
                    acc.map = m.double() if acc.map is None else acc.map.add_(m)
                elif kind == "graded" or (kind == "pooled" and self.pooled_fc == "mac"):
                    m = _position_map(x != 0, per_sample_dims)
                    acc.map = m.double() if acc.map is None else acc.map.add_(m)
                if kind == "pooled" and tag is not None and tag[0] == "pooled":
                    acc.pool_nnz.append(tag[1])
                    acc.pool_numel += tag[2]
                elif kind == "static" and st.hint != "static" and steps > 1:
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
            raise UsageError("no images were counted: run the model inside the EnergyCounter first "
                             "(a single-step net needs its state reset per image, or timesteps=)")
        self._snapshot()
        got = self._read_totals()
        rows: list[LayerEnergy] = []
        spikes_total = slots_total = 0
        firing: dict[str, float] = {}
        for st in self._states:
            ops, nnz_sum, numel_sum = self._layer_ops(st, got)
            rate = nnz_sum / numel_sum if numel_sum else None
            if st.input_kind == "spike" and numel_sum:
                firing[st.name] = rate
                spikes_total += nnz_sum
                slots_total += numel_sum
            rows.append(self._layer_row(st, ops / n_img, rate))
        report = _price(
            cm,
            rows,
            self._neuron_rows(n_img),
            images=int(round(n_img)),
            timesteps=self._learned_timesteps(),
            mean_firing_rate=spikes_total / slots_total if slots_total else None,
            firing_rates=firing,
            options={"pooled_fc": self.pooled_fc},
        )
        log.debug(
            "energy[%s]: %d images, %.4g MACs + %.4g ACs per image = %.4g pJ",
            cm.name, n_img, report.macs, report.acs, report.energy_pj,
        )  # fmt: skip
        return report

    def _snapshot(self) -> None:
        """Each layer's weight statistics and fan-out maps as they are now (report() inside the context)."""
        for st in self._states:
            if st.weights is None:
                st.weights = weight_stats(st.module)
            for key, acc in st.acc.items():
                if acc.map is not None and key not in st.fanout:
                    st.fanout[key] = _fanout(st.module, acc.in_shape)

    def _read_totals(self) -> dict[tuple[str, object, str], float]:
        """Every accumulated count, ``{(layer, input key, slot): total}``, read in one device sync
        (float64 holds every count exactly)."""
        pending: list[tuple[str, object, str]] = []
        parts: list[list[torch.Tensor]] = []
        for st in self._states:
            for key, acc in st.acc.items():
                for slot in ("check", "pool_nnz"):
                    pending.append((st.name, key, slot))
                    parts.append(getattr(acc, slot))
                if acc.map is not None:
                    fan = st.fanout[key]
                    pending.append((st.name, key, "events"))
                    parts.append([torch.dot(acc.map.reshape(-1), fan.reshape(-1))])
                    pending.append((st.name, key, "nnz"))
                    parts.append([acc.map.sum()])
        return dict(zip(pending, _totals(parts)))

    def _layer_ops(self, st: _LayerState, got: dict) -> tuple[float, int, int]:
        """A layer's ops under the rule of its input kind (before dividing by images), and the
        nonzero and total input slots its firing rate is read from."""
        numel, nonzero, _ = st.weights
        density = nonzero / numel if numel else 0.0
        kind = st.input_kind or "unused"
        ops = 0.0
        nnz_sum = numel_sum = 0
        bad = 0.0
        for key, acc in st.acc.items():
            g = lambda slot: got.get((st.name, key, slot), 0.0)  # noqa: B023, E731
            bad += abs(g("check")) if kind in ("spike", "static") else 0.0
            if kind in ("spike", "graded") or (kind == "pooled" and self.pooled_fc == "mac"):
                ops += _rule_events(g("events"))
                if kind != "pooled":
                    nnz_sum += round(g("nnz"))
                    numel_sum += acc.numel
            if kind == "pooled":
                nnz_sum += round(g("pool_nnz"))
                numel_sum += acc.pool_numel
                if self.pooled_fc == "ac":
                    ops += _rule_pooled_ac(g("pool_nnz"), acc.pool_numel, acc.samples, acc.dense * density)
            elif kind == "static":
                ops += _rule_static(acc.dense * density, acc.images)
            elif kind in ("real", "sign"):
                ops += _rule_dense(acc.dense * density, acc.samples)
        if bad:
            log.warning(
                "energy: layer %s was classified %r on its first batch but later inputs "
                "were not; its counts follow the %r rule",
                st.name, kind, kind,
            )  # fmt: skip
        return ops, nnz_sum, numel_sum

    def _layer_row(self, st: _LayerState, ops_per_image: float, rate: float | None) -> LayerEnergy:
        """A layer's counts per image, its rule and its storage (energy: priced by :func:`_price`)."""
        numel, nonzero, binary = st.weights
        kind = st.input_kind or "unused"
        is_ac = kind in _AC_KINDS or (kind == "pooled" and self.pooled_fc == "ac")
        stor = layer_storage(st.module, st.weights)
        return LayerEnergy(
            name=st.name,
            kind=st.kind,
            input_shape=st.input_shape or (),
            input_kind=kind,
            op_kind="-" if kind == "unused" else ("AC" if is_ac else "MAC"),
            macs=0.0 if is_ac else ops_per_image,
            acs=ops_per_image if is_ac else 0.0,
            weight_density=nonzero / numel if numel else 0.0,
            firing_rate=rate,
            weight_bits=1 if binary else 32,
            mask_bits=1 if stor.format in ("bitmask-fp32", "sign-mask") else 0,
            weight_numel=numel,
            binary=binary,
            energy_pj=0.0,  # priced by _price
            rule=f"{kind}-{'ac' if is_ac else 'mac'}" if kind != "unused" else "unused",
            storage=stor.format,
            stored_bits=stor.bits,
        )

    def _neuron_rows(self, n_img: float) -> tuple[NeuronEnergy, ...]:
        """Each neuron layer's updates and their ops per image."""
        return tuple(
            NeuronEnergy(
                name=n.name, kind=n.kind, step_mode=getattr(n.module, "step_mode", "s"),
                updates=n.updates / n_img, adds=n.updates * n.adds / n_img, mults=n.updates * n.mults / n_img,
                compares=n.updates * n.compares / n_img, resets=n.updates * n.resets / n_img,
                state_bits=n.bits if n.stateful else 0,
            )
            for n in self._nodes if n.updates
        )  # fmt: skip

    def _learned_timesteps(self) -> int | None:
        if self.timesteps:
            return self.timesteps
        if self._steps_seen:
            return self._steps_seen
        if self.single_step and self._sequences:
            return round(self._calls / self._sequences)
        return None


def _rule_events(events: float) -> float:
    """Rules ``spike-ac`` / ``graded-mac``: ops = Σ over input events (spikes or nonzeros) of their fan-out."""
    return events


def _rule_pooled_ac(pool_spikes: float, pool_numel: int, samples: int, synapses: float) -> float:
    """Rule ``pooled-ac``: ACs = T·N · r_pool · dense·d, r_pool = spikes / slots entering the pool."""
    return pool_spikes / pool_numel * samples * synapses if pool_numel else 0.0


def _rule_static(synapses: float, images: int) -> float:
    """Rule ``static-mac``: MACs = dense·d once per image (the same input at every step)."""
    return synapses * images


def _rule_dense(synapses: float, samples: int) -> float:
    """Rules ``real-mac`` / ``sign-ac``: ops = dense·d per sample and step (no zero skipping)."""
    return synapses * samples


def count_energy(
    model: nn.Module,
    batches: Iterable,
    cost_model: str | CostModel = "horowitz45",
    *,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    timesteps: int | None = None,
    pooled_fc: str = "ac",
) -> EnergyReport:
    """One eval pass over ``batches`` (tensors or ``(x, y, ...)`` tuples) with counting.

    The model is put in eval mode (and restored), run under ``no_grad``, and a spiking
    model is reset with ``reset_net`` before and after every batch. A single-step
    spiking model (all neuron nodes in step mode 's', no ``timesteps`` attribute) is
    driven ``timesteps`` times per batch (direct encoding: the same input every step).
    """
    from .._sj import reset_net

    counter = EnergyCounter(model, cost_model, timesteps=timesteps, pooled_fc=pooled_fc)
    steps = 1
    if counter.single_step:
        if not timesteps:
            raise UsageError("a single-step spiking model needs timesteps= (how many steps per image)")
        steps = int(timesteps)
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
                for _ in range(steps):
                    model(x)
                if counter.spiking:
                    reset_net(model)
    finally:
        model.train(was_training)
    return counter.report()
