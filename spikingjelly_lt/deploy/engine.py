"""Compile a binary-weight spiking ticket into exact integer-arithmetic inference on the CPU.

After the first layer every BinW-SLT layer multiplies binary inputs (spikes in {0, 1};
bnn-act-lt: {-1, +1}) by ``alpha * q`` with ``q`` in {-1, 0, +1}, so the layer's sum is
``alpha * z`` with ``z = conv(s, q)`` an integer, ``|z| <= fan_in``. In eval mode alpha,
a Linear bias and BatchNorm fold into one per-channel ``scale * z + bias`` (docs/deploy.md, "Why it is exact").
``z`` comes out exact from every engine of :mod:`.cpu`; the affine map and the neurons
(LIF membrane, fp32) follow it. Stateless layers see all T steps as one batch
(``[T*N, ...]``); only the neurons loop over time.

The compiled net is a small program of ops (stem, neuron, conv, linear, pools, residual
block) read from the model's structure. An average pool stays integer: on spikes it sums
them (counts ``0..kh kw``) and the next layer's scale takes the ``1 / (kh kw)``; on a
conv's pre-activation it sums ``z`` before that conv's affine map. Weights are read only through
:func:`~spikingjelly_lt.pruners.common.effective_weight` and a layer counts as binary
when its values are exactly {-alpha, 0, +alpha}. :func:`reference_forward` runs the same
program in float64 (the exactness yardstick).
"""

from __future__ import annotations

import contextlib
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..pruners.common import effective_weight
from .cpu import choose_engine, cpu_info
from .pack import pack_ternary, unpack_ternary

__all__ = [
    "STORAGE",
    "FIRST_LAYER",
    "LIF_KERNELS",
    "native_lif",
    "CompiledNet",
    "compile_model",
    "reference_forward",
    "weight_bytes",
]

log = logging.getLogger("spikingjelly_lt")

STORAGE = ("packed", "int8")
FIRST_LAYER = ("fp32", "bf16")
# every integer up to these magnitudes is exact in the dtype: a grouped engine keeps each
# partial sum within it, so the sum is exact whatever precision the convolution accumulates in
_EXACT_UP_TO = {torch.bfloat16: 256, torch.float16: 2048}
_GROUPED = {"bf16": torch.bfloat16, "fp16": torch.float16}
_INT8_COUNTS = 127  # the largest average-pool count an int8 (u8) input may carry
_CL = torch.channels_last


# -- the program ------------------------------------------------------------------------


@dataclass
class Affine:
    """``scale * z + bias`` per output channel: float64 master copy, fp32 for the engine."""

    scale64: torch.Tensor
    bias64: torch.Tensor

    def __post_init__(self) -> None:
        self.scale = self.scale64.to(torch.float32)
        self.bias = self.bias64.to(torch.float32)

    def to(self, device: torch.device) -> None:
        self.scale64, self.bias64 = self.scale64.to(device), self.bias64.to(device)
        self.scale, self.bias = self.scale.to(device), self.bias.to(device)


@dataclass
class Ternary:
    """``q`` in {-1, 0, +1} stored packed (1.6 bit) or as int8; ``alpha`` per layer."""

    shape: tuple[int, ...]
    alpha: float
    storage: str
    data: torch.Tensor

    @classmethod
    def of(cls, q: torch.Tensor, alpha: float, storage: str) -> Ternary:
        data = pack_ternary(q) if storage == "packed" else q.to(torch.int8).contiguous()
        return cls(tuple(q.shape), float(alpha), storage, data)

    def q(self) -> torch.Tensor:
        return unpack_ternary(self.data, self.shape) if self.storage == "packed" else self.data

    @property
    def bytes(self) -> int:
        return self.data.numel() * self.data.element_size() + 4  # + alpha (fp32)

    def to(self, device: torch.device) -> None:
        self.data = self.data.to(device)


@dataclass
class AvgPool:
    """``AvgPool2d`` as a sum pool of integers (spike counts, or a conv's ``z``), exact; its
    ``1 / (kh kw)`` is folded into the scale of the layer that reads the sums.

    ``in_max``: the largest count in its input (1 on spikes; ``kh kw`` after another pool).
    """

    name: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_max: int = 1

    @property
    def div(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def out_max(self) -> int:
        return self.in_max * self.div


@dataclass
class Stem:
    """First layer on the real image: conv (fp32 or bf16) + folded BN (+ an average pool
    before its neuron, on the real values)."""

    name: str
    weight: Ternary | torch.Tensor  # Ternary when binary (alpha folded into affine)
    stride: tuple[int, int]
    padding: tuple[int, int]
    affine: Affine
    pool: AvgPool | None = None

    def w(self) -> torch.Tensor:
        return self.weight.q().to(torch.float32) if isinstance(self.weight, Ternary) else self.weight


@dataclass
class Neuron:
    """lif / if (fp32 membrane, T steps) or sign (bnn-act: +-1)."""

    name: str
    kind: str
    tau: float = 2.0
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: float | None = 0.0


@dataclass
class IntConv:
    """``conv(s, q)`` then ``scale * z + bias``.

    ``in_div`` / ``in_max``: its input holds average-pool counts up to ``in_max`` that stand
    for ``counts / in_div`` (``affine.scale`` already holds the ``1 / in_div``); ``pool``: an
    average pool on its pre-activation, run on the integer ``z`` before the affine map.
    """

    name: str
    weight: Ternary
    stride: tuple[int, int]
    padding: tuple[int, int]
    affine: Affine
    cache: dict = field(default_factory=dict, repr=False)
    pool: AvgPool | None = None
    in_div: int = 1
    in_max: int = 1


@dataclass
class IntLinear:
    name: str
    weight: Ternary
    affine: Affine
    cache: dict = field(default_factory=dict, repr=False)
    in_div: int = 1  # as IntConv's
    in_max: int = 1


@dataclass
class MaxPool:
    name: str
    kernel: int
    stride: int


@dataclass
class GlobalPool:
    name: str
    in_max: int = 1  # the largest count in its input (after an average pool: > 1)


@dataclass
class Flatten:
    """``[M, C, H, W]`` binary activations -> ``[M, C*H*W]`` (torch's order), before a Linear."""

    name: str


@dataclass
class Block:
    """conv1 -> sn1 -> conv2, + shortcut (conv or identity), -> sn2."""

    name: str
    conv1: IntConv
    sn1: Neuron
    conv2: IntConv
    shortcut: IntConv | None
    sn2: Neuron
    in_div: int = 1  # its input: average-pool counts / in_div (the identity shortcut divides)


Op = Neuron | IntConv | IntLinear | MaxPool | AvgPool | GlobalPool | Flatten | Block

#: what compile_model (and ``ticket run``, ``--format nir``) accepts, for the refusal message
SUPPORTED = ("Conv2d", "Linear", "BatchNorm1d/2d (folded)", "Flatten", "MaxPool2d (square, no padding)",
             "AvgPool2d (ceil_mode=False, no divisor_override, count_include_pad=False only without padding)",
             "AdaptiveAvgPool2d(1) / global average pooling", "Dropout (identity in eval)",
             "SpikingJelly LIFNode / IFNode / ParametricLIFNode (learned tau as a constant)", "Sign",
             "the package's ResNet-19 BasicBlock")


# -- reading a model --------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _ternary(name: str, module: nn.Module) -> tuple[torch.Tensor, float]:
    """``(q, alpha)`` of a layer whose running weight is exactly {-alpha, 0, +alpha}."""
    w = effective_weight(module).detach().to("cpu", torch.float64)
    nz = w[w != 0].abs()
    alpha = float(nz.max()) if nz.numel() else 0.0
    if nz.numel() and not bool((nz == alpha).all()):
        raise UsageError(
            f"layer {name} is not binary (its weights are not exactly {{-alpha, 0, +alpha}}); "
            "the integer engine needs a binary-weight ticket (binw-slt, bnn-act-lt)")
    return torch.sign(w).to(torch.int8), alpha


def _bn_fold(bn: nn.Module | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, b) with ``BN(x) = s * x + b`` in eval mode, float64."""
    if bn is None:
        return torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    if bn.running_mean is None or bn.running_var is None:
        raise UsageError("a BatchNorm without running statistics cannot be folded")
    mean = bn.running_mean.detach().double().cpu()
    inv = 1.0 / torch.sqrt(bn.running_var.detach().double().cpu() + float(bn.eps))
    gamma = bn.weight.detach().double().cpu() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double().cpu() if bn.bias is not None else torch.zeros_like(mean)
    s = gamma * inv
    return s, beta - mean * s


def _affine(alpha: float, layer_bias: torch.Tensor | None, bn: nn.Module | None, channels: int) -> Affine:
    s, b = _bn_fold(bn, channels)
    lb = layer_bias.detach().double().cpu() if layer_bias is not None else torch.zeros(channels, dtype=torch.float64)
    return Affine(s * alpha, s * lb + b)


def _neuron(name: str, module: nn.Module) -> Neuron | None:
    from .._sj import neuron as sj_neuron
    from ..neuron.fast_lif import FastLIFNode
    from ..neuron.neurons import Sign

    if isinstance(module, (FastLIFNode, sj_neuron.LIFNode)):
        return Neuron(name, "lif", float(module.tau), bool(module.decay_input), float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, sj_neuron.ParametricLIFNode):  # the learned tau, frozen as a constant
        tau = 1.0 / float(torch.sigmoid(module.w.detach().double()))
        return Neuron(name, "lif", tau, bool(module.decay_input), float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, sj_neuron.IFNode):
        return Neuron(name, "if", 1.0, True, float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, Sign):
        return Neuron(name, "sign")
    return None


def _bn_after(mods: list[tuple[str, nn.Module]], i: int, kinds: tuple[type, ...]) -> nn.Module | None:
    if i + 1 < len(mods) and isinstance(mods[i + 1][1], kinds):
        return mods[i + 1][1]
    return None


def _conv(name: str, conv: nn.Conv2d, bn: nn.Module | None, storage: str) -> IntConv:
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or conv.padding_mode != "zeros":
        raise UsageError(f"layer {name}: only plain convolutions (groups 1, dilation 1, zero padding) compile")
    if isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: string padding {conv.padding!r} does not compile")
    q, alpha = _ternary(name, conv)
    return IntConv(name, Ternary.of(q, alpha, storage), _pair(conv.stride), _pair(conv.padding),
                   _affine(alpha, conv.bias, bn, conv.out_channels))


_AVGPOOL_OK = ("AvgPool2d(kernel, stride, padding) with ceil_mode=False, no divisor_override, "
               "count_include_pad=True (False only without padding)")


def _avgpool(name: str, m: nn.AvgPool2d) -> AvgPool:
    """The sum-pool op of an ``nn.AvgPool2d`` whose every window divides by ``kh kw`` (torch's
    default); options that change the divisor per window are refused in one line."""
    k = _pair(m.kernel_size)
    s = _pair(m.stride) if m.stride not in (None, (), []) else k
    p = _pair(m.padding)
    why = ("ceil_mode=True" if m.ceil_mode else
           f"divisor_override={m.divisor_override}" if m.divisor_override is not None else
           "count_include_pad=False with padding > 0" if not m.count_include_pad and p != (0, 0) else None)
    if why:
        raise UsageError(f"layer {name} (AvgPool2d): {why} does not compile; supported: {_AVGPOOL_OK}")
    return AvgPool(name, k, s, p)


def _is_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("conv1", "bn1", "sn1", "conv2", "bn2", "shortcut", "sn2"))


def _plan(model: nn.Module, storage: str) -> tuple[Stem, list[Op]]:
    """The program of ``model``: the package's Network (encoder + body), or any chain of supported layers
    (a model by reference, a plain ``nn.Sequential``), read in definition order."""
    if not all(isinstance(getattr(model, attr, None), nn.Module) for attr in ("encoder", "body")):
        return _plan_chain(model, storage)
    enc = list(model.encoder.named_children())
    if len(enc) != 2 or not isinstance(enc[0][1], nn.Conv2d) or not isinstance(enc[1][1], nn.BatchNorm2d):
        raise UsageError("the model's encoder is not conv + BatchNorm2d")
    conv, bn = enc[0][1], enc[1][1]
    name = f"encoder.{enc[0][0]}"
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: only plain convolutions compile")
    w = effective_weight(conv).detach().to("cpu", torch.float32)
    try:
        q, alpha = _ternary(name, conv)
        weight: Ternary | torch.Tensor = Ternary.of(q, alpha, storage)
        aff = _affine(alpha, conv.bias, bn, conv.out_channels)
    except UsageError:  # a dense first layer (keep_first): it sees the real image anyway
        weight = w.contiguous()
        aff = _affine(1.0, conv.bias, bn, conv.out_channels)
    stem = Stem(name, weight, _pair(conv.stride), _pair(conv.padding), aff)
    return stem, _ops([(f"body.{n}", m) for n, m in model.body.named_children()], storage, stem)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in definition order (nested containers opened; ResNet-19 blocks kept whole)."""
    from ..energy.counter import is_neuron_node

    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, m: nn.Module) -> None:
        for n, c in m.named_children():
            leaf = not any(True for _ in c.children())
            if leaf or _is_block(c) or is_neuron_node(c) or isinstance(c, (nn.Conv2d, nn.Linear)):
                out.append((f"{prefix}{n}", c))
            else:
                walk(f"{prefix}{n}.", c)

    walk("", model)
    return out


def _plan_chain(model: nn.Module, storage: str) -> tuple[Stem, list[Op]]:
    """Any model whose layers run in definition order (a chain, like ``nn.Sequential``)."""
    mods = [(n, m) for n, m in _leaves(model) if not isinstance(m, nn.Dropout) and type(m).__name__ != "Dropout"]
    if not mods or not isinstance(mods[0][1], nn.Conv2d):
        first = f"{mods[0][0]} ({type(mods[0][1]).__name__})" if mods else "nothing"
        raise UsageError(f"the first layer must be a Conv2d on the image, not {first}; supported: {', '.join(SUPPORTED)}")
    name, conv = mods[0]
    bn = _bn_after(mods, 0, (nn.BatchNorm2d,))
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: only plain convolutions compile")
    try:
        q, alpha = _ternary(name, conv)
        weight: Ternary | torch.Tensor = Ternary.of(q, alpha, storage)
        aff = _affine(alpha, conv.bias, bn, conv.out_channels)
    except UsageError:  # a dense first layer: it sees the real image anyway
        weight = effective_weight(conv).detach().to("cpu", torch.float32).contiguous()
        aff = _affine(1.0, conv.bias, bn, conv.out_channels)
    stem = Stem(name, weight, _pair(conv.stride), _pair(conv.padding), aff)
    return stem, _ops(mods[2 if bn is not None else 1:], storage, stem)


def _ops(mods: list[tuple[str, nn.Module]], storage: str, stem: Stem | None = None) -> list[Op]:
    """The ops after the stem. Average pools: on a pre-activation (after a conv + BN, or the stem)
    the pool goes into that layer; on binary activations it is an :class:`AvgPool` op of counts,
    and the ``1 / (kh kw)`` goes into the scale of the conv / linear that reads them."""
    ops: list[Op] = []
    div, vmax, pm1 = 1, 1, False  # what the next layer reads: counts <= vmax standing for counts / div

    def feed(layer: IntConv | IntLinear) -> IntConv | IntLinear:
        if div != 1:
            layer.affine = Affine(layer.affine.scale64 / div, layer.affine.bias64)
        layer.in_div, layer.in_max = div, vmax
        return layer

    i = 0
    while i < len(mods):
        name, m = mods[i]
        neuron = _neuron(name, m)
        if neuron is not None:
            ops.append(neuron)
            div, vmax, pm1 = 1, 1, neuron.kind == "sign"
        elif _is_block(m):
            sc = None
            if len(m.shortcut):
                sc_mods = list(m.shortcut)
                if len(sc_mods) != 2 or not isinstance(sc_mods[0], nn.Conv2d):
                    raise UsageError(f"block {name}: shortcut is not conv + BN")
                sc = feed(_conv(f"{name}.shortcut.0", sc_mods[0], sc_mods[1], storage))
            parts = []
            for a in ("sn1", "sn2"):
                n = _neuron(f"{name}.{a}", getattr(m, a))
                if n is None:
                    raise UsageError(f"block {name}: activation {type(getattr(m, a)).__name__} is not binary")
                parts.append(n)
            ops.append(Block(name, feed(_conv(f"{name}.conv1", m.conv1, m.bn1, storage)), parts[0],
                             _conv(f"{name}.conv2", m.conv2, m.bn2, storage), sc, parts[1], div))
            div, vmax, pm1 = 1, 1, parts[1].kind == "sign"
        elif isinstance(m, nn.Conv2d):
            bn = _bn_after(mods, i, (nn.BatchNorm2d,))
            ops.append(feed(_conv(name, m, bn, storage)))
            i += 1 if bn is not None else 0
        elif isinstance(m, nn.Linear):
            bn = _bn_after(mods, i, (nn.BatchNorm1d,))
            q, alpha = _ternary(name, m)
            ops.append(feed(IntLinear(name, Ternary.of(q, alpha, storage),
                                      _affine(alpha, m.bias, bn, m.out_features))))
            i += 1 if bn is not None else 0
        elif isinstance(m, nn.MaxPool2d):
            k, s = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
            if k[0] != k[1] or s[0] != s[1] or _pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1):
                raise UsageError(f"layer {name}: only square max-pools without padding compile")
            ops.append(MaxPool(name, k[0], s[0]))
        elif isinstance(m, nn.AvgPool2d):
            pool = _avgpool(name, m)
            prev = ops[-1] if ops else stem
            if isinstance(prev, (IntConv, Stem)):  # a pre-activation: pool the integer sums (the stem: its values)
                if prev.pool is not None:
                    raise UsageError(f"layer {name}: a second average pool on {prev.name}'s pre-activation "
                                     "does not compile; put a neuron between them")
                prev.pool = pool
            elif isinstance(prev, (Neuron, Block, MaxPool, AvgPool)):
                if pm1:
                    raise UsageError(f"layer {name}: average pooling of +-1 sign activations (bnn-act-lt) does not "
                                     "compile; pool before the sign, or use a spiking neuron")
                pool.in_max = vmax
                ops.append(pool)
                div, vmax = div * pool.div, pool.out_max
            else:
                what = f"{prev.name} ({type(prev).__name__})" if prev is not None else "nothing"
                raise UsageError(f"layer {name}: average pooling after {what} does not compile; it must follow "
                                 "a conv (+ BatchNorm), a neuron or another pool")
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):
                raise UsageError(f"layer {name}: only global average pooling compiles")
            ops.append(GlobalPool(name, vmax))
        elif isinstance(m, nn.Flatten):
            if ops and not isinstance(ops[-1], (GlobalPool, Flatten)):  # after a global pool: already [M, C]
                ops.append(Flatten(name))
        elif isinstance(m, nn.Dropout):
            pass  # identity in eval
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UsageError(f"layer {name} ({type(m).__name__}) has no exact integer form here: a BatchNorm "
                             "compiles only directly after its Conv2d / Linear (folded into it); supported: "
                             f"{', '.join(SUPPORTED)}")
        else:
            raise UsageError(f"layer {name} ({type(m).__name__}) has no exact integer form; supported: "
                             f"{', '.join(SUPPORTED)}")
        i += 1
    if not ops or not isinstance(ops[0], Neuron):
        raise UsageError("the first layer (conv + BN) must be followed by a binary neuron (LIF, IF, PLIF, sign)")
    for prev, op in zip(ops, ops[1:]):  # real values (a conv's or linear's output) feed a neuron only
        if isinstance(prev, (IntConv, IntLinear)) and not isinstance(op, Neuron):
            raise UsageError(f"layer {op.name} ({type(op).__name__}) reads the real-valued output of {prev.name}; "
                             "only a neuron (or an AvgPool2d before it) compiles there")
    if not isinstance(ops[-1], IntLinear):
        raise UsageError(f"the model must end in a Linear readout, not {ops[-1].name}; supported: {', '.join(SUPPORTED)}")
    return ops


# -- the two backends: engine (fp32 / integer) and float64 reference ---------------------


@contextlib.contextmanager
def _exact_algorithms(no_cudnn: bool):
    """Convolutions without cuDNN where asked (a GPU): PyTorch's own im2col + GEMM kernels
    then sum the products plainly, exact within the grouped bound; cuDNN may choose
    Winograd or FFT algorithms, which transform the operands and round."""
    if not no_cudnn:
        yield
        return
    with torch.backends.cudnn.flags(enabled=False):
        yield


def _z_float64(op: IntConv, a: _Bin) -> torch.Tensor:
    """The yardstick: ``conv(s, q)`` in float64 (``s`` the {0, 1} or +-1 activations)."""
    s = a.t.double()
    if a.pm1:
        s = 2 * s - 1
    return F.conv2d(s, op.weight.q().double(), None, op.stride, op.padding)


def _sum_pool(t: torch.Tensor, op: AvgPool) -> torch.Tensor:
    """Window sums of the integers ``t`` ``[M, C, H, W]`` (spike counts or a conv's ``z``), exact.

    uint8 counts stay uint8 (when the sums fit): non-overlapping windows without padding add the
    ``kh kw`` strided views, as :meth:`_Engine.maxpool` does; anything else is torch's own average
    pool with divisor 1 (sums of integers below 2^24 are exact in fp32, in any order).
    """
    if t.dtype != torch.uint8:
        return F.avg_pool2d(t, op.kernel, op.stride, op.padding, divisor_override=1)
    (kh, kw), fits = op.kernel, op.out_max <= 255
    if op.kernel == op.stride and op.padding == (0, 0) and fits:
        t = t[:, :, :t.shape[2] // kh * kh, :t.shape[3] // kw * kw]  # the pool floors: drop the ragged edge
        out = t[:, :, 0::kh, 0::kw].clone(memory_format=_CL)
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    out.add_(t[:, :, i::kh, j::kw])
        return out
    out = F.avg_pool2d(t.to(torch.float32), op.kernel, op.stride, op.padding, divisor_override=1)
    return out.to(torch.uint8) if fits else out


def _pool_affine(op: IntConv, hw: tuple[int, int], dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, bias)`` after the pre-activation pool of ``op`` on an ``hw`` map of sums ``Z``:
    ``avgpool(scale z + bias) = (scale / kh kw) Z + bias N / kh kw``, ``N`` the number of
    unpadded positions in each window (``kh kw`` everywhere without padding)."""
    pool = op.pool
    key = ("pool", *hw, dtype, str(device))
    hit = op.cache.get(key)
    if hit is not None:
        return hit
    scale64, bias64 = op.affine.scale64.to(device), op.affine.bias64.to(device)
    scale = (scale64 / pool.div).view(1, -1, 1, 1)
    bias = bias64.view(1, -1, 1, 1)
    if pool.padding != (0, 0):
        ones = torch.ones(1, 1, *hw, dtype=torch.float64, device=device)
        bias = bias * (F.avg_pool2d(ones, pool.kernel, pool.stride, pool.padding, divisor_override=1) / pool.div)
    op.cache[key] = (scale.to(dtype), bias.to(dtype))
    return op.cache[key]


@dataclass
class _Bin:
    """Binary activations ``[M, ...]``: uint8 in {0, 1}; ``pm1``: they stand for 2 b - 1. After
    an average pool: the window counts (uint8, or fp32 beyond 255), scaled by the next layer."""

    t: torch.Tensor
    pm1: bool


@dataclass
class _Count:
    """Global-pool counts ``[M, C]`` of binary activations over ``hw`` positions."""

    t: torch.Tensor
    pm1: bool
    hw: int


class _Engine:
    """fp32 values, binary activations as uint8, exact integer products."""

    dtype = torch.float32

    def __init__(self, engine: str, first_layer: str, record: dict | None, fuse: bool = True,
                 lif: str = "torch", no_cudnn: bool = False) -> None:
        self.engine, self.first_layer, self.record, self.fuse, self.lif = engine, first_layer, record, fuse, lif
        self.no_cudnn = no_cudnn  # GPU: the convolutions avoid cuDNN (see CompiledNet._verify)
        self.inexact: list[str] | None = None  # a list: check every integer conv against float64

    # layers
    def stem(self, op: Stem, x: torch.Tensor) -> torch.Tensor:
        w = op.w()
        x = x.to(torch.float32).contiguous(memory_format=_CL)
        if self.first_layer == "bf16":
            y = F.conv2d(x.bfloat16(), w.bfloat16().contiguous(memory_format=_CL), None, op.stride, op.padding).float()
        elif x.device.type == "cpu":
            y = F.conv2d(x, w.contiguous(memory_format=_CL), None, op.stride, op.padding)
        else:
            with torch.backends.cudnn.flags(enabled=not self.no_cudnn, allow_tf32=False):  # a GPU: fp32, not TF32
                y = F.conv2d(x, w.contiguous(memory_format=_CL), None, op.stride, op.padding)
        y = y.mul_(op.affine.scale.view(1, -1, 1, 1)).add_(op.affine.bias.view(1, -1, 1, 1))
        if op.pool is not None:  # real values (the image's first layer): averaged as the model does
            y = F.avg_pool2d(y, op.pool.kernel, op.pool.stride, op.pool.padding)
        return y

    def _conv_weight(self, op: IntConv, kind: str):
        key = (kind, self.engine)
        hit = op.cache.get(key)
        if hit is not None:
            return hit
        q = op.weight.q()
        if kind == "int8":
            o = q.shape[0]
            w = torch.ops.onednn.qconv_prepack(q.contiguous(), torch.ones(o), 1.0, 0, list(op.stride),
                                               list(op.padding), [1, 1], 1, None)
            w = (w, torch.ones(o), torch.zeros(o, dtype=torch.int64))
        elif kind in _GROUPED:
            dtype = _GROUPED[kind]
            # >= 1: compile_model checks the kernel (times the largest average-pool count it reads)
            per = _EXACT_UP_TO[dtype] // (q.shape[2] * q.shape[3] * op.in_max)
            w = [(c, min(c + per, q.shape[1]), q[:, c:c + per].to(dtype).contiguous(memory_format=_CL))
                 for c in range(0, q.shape[1], per)]
        else:
            w = q.to(torch.float32).contiguous(memory_format=_CL)
        if op.weight.storage == "int8" or kind == "border":
            op.cache[key] = w  # resident only when the int8 storage is the engine's own form
        return w

    def _z01(self, op: IntConv, s: torch.Tensor) -> torch.Tensor:
        """conv(s, q) for s in {0, 1} (uint8, channels_last): exact integers in fp32."""
        w = self._conv_weight(op, self.engine)
        if self.engine == "int8":
            pw, ones, zp = w
            return torch.ops.onednn.qconv2d_pointwise(s, 1.0, 0, pw, ones, zp, None, list(op.stride),
                                                      list(op.padding), [1, 1], 1, 1.0, 0, torch.float32,
                                                      "none", [], "")
        if self.engine in _GROUPED:
            sb = s.to(_GROUPED[self.engine])
            z = None
            with _exact_algorithms(self.no_cudnn):
                for c0, c1, wg in w:
                    part = F.conv2d(sb[:, c0:c1], wg, None, op.stride, op.padding).float()
                    z = part if z is None else z.add_(part)
            return z
        with _exact_algorithms(self.no_cudnn):
            return F.conv2d(s.to(torch.float32), w, None, op.stride, op.padding)

    def _border(self, op: IntConv, h: int, w: int) -> torch.Tensor:
        """conv(1, q) over the valid (unpadded) positions: the -1 half of a +-1 input."""
        key = ("border", h, w)
        if key not in op.cache:
            ones = torch.ones(1, op.weight.shape[1], h, w, dtype=torch.float64, device=op.weight.data.device)
            op.cache[key] = F.conv2d(ones, op.weight.q().double(), None, op.stride, op.padding).float()
        return op.cache[key]

    def _fused(self, op: IntConv, s: torch.Tensor) -> torch.Tensor:
        """int8: ``scale * z + bias`` straight from oneDNN's int32 sum (one rounding, no z pass)."""
        key = ("fused", self.engine)
        w = op.cache.get(key)
        if w is None:
            scale = op.affine.scale.contiguous()
            pw = torch.ops.onednn.qconv_prepack(op.weight.q().contiguous(), scale, 1.0, 0, list(op.stride),
                                                list(op.padding), [1, 1], 1, None)
            w = (pw, scale, torch.zeros(scale.numel(), dtype=torch.int64), op.affine.bias.contiguous())
            if op.weight.storage == "int8":
                op.cache[key] = w
        return torch.ops.onednn.qconv2d_pointwise(s, 1.0, 0, w[0], w[1], w[2], w[3], list(op.stride),
                                                  list(op.padding), [1, 1], 1, 1.0, 0, torch.float32,
                                                  "none", [], "")

    def conv(self, op: IntConv, a: _Bin) -> torch.Tensor:
        if self.engine == "int8" and self.fuse and not a.pm1 and op.pool is None:
            if self.record is not None:  # z itself, from the same int32 accumulation with unit scales
                self.record.setdefault(op.name, {})["z"] = self._z01(op, a.t)
            return self._fused(op, a.t)
        z = self._z01(op, a.t)
        if a.pm1:  # conv(2b - 1, q) = 2 conv(b, q) - conv(1, q)
            z = z.mul_(2).sub_(self._border(op, a.t.shape[2], a.t.shape[3]))
        if self.inexact is not None:
            with _exact_algorithms(True):
                if not torch.equal(z.double(), _z_float64(op, a)):
                    self.inexact.append(op.name)
        if self.record is not None:
            self.record.setdefault(op.name, {})["z"] = z.clone()
        if op.pool is not None:  # average pool on the pre-activation: sum the integers z, then the map
            scale, bias = _pool_affine(op, tuple(z.shape[2:]), z.dtype, z.device)
            z = _sum_pool(z, op.pool)
            if self.record is not None:
                self.record.setdefault(op.pool.name, {})["z"] = z.clone()
            return z.mul_(scale).add_(bias)
        return z.mul_(op.affine.scale.view(1, -1, 1, 1)).add_(op.affine.bias.view(1, -1, 1, 1))

    def _linear_z(self, op: IntLinear, a: _Bin | _Count) -> tuple[torch.Tensor, int]:
        x = a.t
        q = op.weight.q()
        if self.engine == "int8" and x.dtype == torch.uint8 and op.in_max <= _INT8_COUNTS:
            key = "int8-linear"
            w = op.cache.get(key)
            if w is None:
                o = q.shape[0]
                w = (torch.ops.onednn.qlinear_prepack(q.contiguous(), None), torch.ones(o),
                     torch.zeros(o, dtype=torch.int64))
                if op.weight.storage == "int8":
                    op.cache[key] = w
            z = torch.ops.onednn.qlinear_pointwise(x.contiguous(), 1.0, 0, w[0], w[1], w[2], None, 1.0, 0,
                                                   torch.float32, "none", [], "")
        elif x.device.type == "cpu":  # fp32 matmul: exact for integer sums below 2^24
            z = x.to(torch.float32) @ q.to(torch.float32).t()
        else:  # a GPU may run fp32 matmuls in TF32: float64 is exact there (and these layers are small)
            z = (x.to(torch.float64) @ q.to(torch.float64).t()).to(torch.float32)
        hw = a.hw if isinstance(a, _Count) else 1
        if a.pm1:  # sum of +-1 over hw positions = 2 count - hw
            z = z.mul_(2).sub_(float(hw) * q.to(torch.float32).sum(1))
        if self.record is not None:
            self.record.setdefault(op.name, {})["z"] = z.clone()
        return z, hw

    def linear(self, op: IntLinear, a: _Bin | _Count) -> torch.Tensor:
        z, hw = self._linear_z(op, a)
        scale = op.affine.scale if hw == 1 else (op.affine.scale64 / hw).to(torch.float32)
        return z.mul_(scale).add_(op.affine.bias)

    def readout(self, op: IntLinear, a: _Bin | _Count, steps: int) -> torch.Tensor:
        """float64 logits from the exact integer sum over T: ``scale * sum_t z_t / T + bias``."""
        z, hw = self._linear_z(op, a)
        total = z.double().reshape(steps, -1, z.shape[-1]).sum(0)
        return total * (op.affine.scale64 / (hw * steps)) + op.affine.bias64

    def maxpool(self, op: MaxPool, a: _Bin) -> _Bin:
        """Max of binary values (= OR) over k x k windows.

        Non-overlapping windows are an elementwise max of the k*k strided views, which
        keeps channels_last and runs 40x faster than a windowed ``amax`` over a 6-d view
        (VGG-16's first pool: 77 ms -> 1.9 ms, one thread).
        """
        t, k = a.t, op.kernel
        if k != op.stride:  # (after an average pool the values are counts: max of counts, same dtype)
            return _Bin(F.max_pool2d(t.float(), k, op.stride).to(t.dtype), a.pm1)
        h, w = t.shape[2] // k * k, t.shape[3] // k * k  # the pool floors: drop the ragged edge
        t = t[:, :, :h, :w]
        out = t[:, :, 0::k, 0::k].contiguous(memory_format=_CL)
        for i in range(k):
            for j in range(k):
                if i or j:
                    torch.maximum(out, t[:, :, i::k, j::k], out=out)
        return _Bin(out, a.pm1)

    def globalpool(self, op: GlobalPool, a: _Bin) -> _Count:
        hw = a.t.shape[2] * a.t.shape[3]
        counts = a.t.sum(dim=(2, 3), dtype=torch.int32)
        return _Count(counts.to(torch.uint8) if hw * op.in_max <= 255 else counts.to(torch.float32), a.pm1, hw)

    def avgpool(self, op: AvgPool, a: _Bin) -> _Bin:
        """Window counts of binary activations (or of counts): exact integers, 1/(kh kw) folded downstream."""
        out = _sum_pool(a.t, op)
        if self.record is not None:
            self.record.setdefault(op.name, {})["z"] = out.clone()
        return _Bin(out, a.pm1)

    def as_real(self, a: _Bin, div: int = 1) -> torch.Tensor:
        x = a.t.to(torch.float32)
        if div != 1:  # average-pool counts
            x.div_(div)
        return x.mul_(2).sub_(1) if a.pm1 else x

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.add_(y)

    def neuron(self, op: Neuron, x: torch.Tensor, T: int, const: bool) -> _Bin:
        """Spikes (uint8) of ``x`` ``[T*N, ...]`` (``const``: ``[N, ...]``, the same at every step)."""
        four = x.dim() == 4
        if four:
            x = x.contiguous(memory_format=_CL)
            flat = x.permute(0, 2, 3, 1).reshape(-1)
            nhwc = (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        else:
            flat = x.contiguous().reshape(-1)
        steps = 1 if op.kind == "sign" else T
        if op.kind == "sign":
            out = torch.ge(flat, 0.0).view(1, -1)
        else:
            m = flat.numel() if const else flat.numel() // steps
            xs = flat.view(1 if const else steps, m)
            out = torch.empty((steps, m), dtype=torch.bool, device=x.device)
            if self.lif == "native":
                native_lif().lif_forward(xs.contiguous(), out, op.tau, op.v_threshold,
                                         0.0 if op.v_reset is None else op.v_reset, op.decay_input,
                                         op.kind == "if", op.v_reset is None)
            else:
                _lif_fp32(op, xs, out)
        n = x.shape[0] * (steps if const else 1)
        t = out.view(torch.uint8).reshape(n, *(nhwc[1:] if four else x.shape[1:]))
        if four:
            t = t.permute(0, 3, 1, 2)
        if self.record is not None:
            self.record.setdefault(op.name, {})["spikes"] = t.clone()
        return _Bin(t, op.kind == "sign")


LIF_KERNELS = ("torch", "native", "auto")


def native_lif():
    """The fused C++ LIF kernel (``_lif_kernel.cpp``, built once by torch's cpp_extension), or None."""
    from .._native import KERNELS, load_kernel

    return load_kernel("sjlt_deploy_lif", str(KERNELS["sjlt_deploy_lif"]))


_CHUNK = 32000  # below torch's parallel grain (32768): each op runs inline, in cache
_POOL: ThreadPoolExecutor | None = None


def _lif_block(op: Neuron, xs: torch.Tensor, out: torch.Tensor, a: int, b: int, scratch: list) -> None:
    """LIF / IF on columns ``a:b`` over all T steps; SpikingJelly's op order (bit-identical)."""
    steps = out.shape[0]
    n = b - a
    if len(scratch) < 3 or scratch[0].numel() < n:
        scratch[:] = [torch.empty(max(n, _CHUNK), dtype=torch.float32, device=xs.device) for _ in range(3)]
    v, h, tmp = (t[:n] for t in scratch)
    reset = 0.0 if op.v_reset is None else op.v_reset
    v.fill_(reset)
    tau = torch.tensor(op.tau, dtype=torch.float32, device=xs.device)
    for t in range(steps):
        xt = (xs[0] if xs.shape[0] == 1 else xs[t])[a:b]
        d = v if reset == 0.0 else torch.sub(v, reset, out=tmp)
        if op.kind == "if":  # H = V + X
            torch.add(v, xt, out=h)
        elif op.decay_input:  # H = V + (X - (V - V_reset)) / tau
            torch.sub(xt, d, out=tmp)
            torch.addcdiv(v, tmp, tau, out=h)
        else:  # H = V - (V - V_reset) / tau + X
            torch.div(d, tau, out=tmp)
            torch.sub(v, tmp, out=h)
            h.add_(xt)
        s = out[t, a:b]
        torch.ge(h, op.v_threshold, out=s)
        if op.v_reset is None:  # soft reset: V = H - S * V_th
            h.sub_(s.to(torch.float32), alpha=op.v_threshold)
        else:
            h.masked_fill_(s, op.v_reset)
        v, h = h, v


def _lif_fp32(op: Neuron, xs: torch.Tensor, out: torch.Tensor) -> None:
    """LIF / IF over ``xs`` ``[T or 1, M]`` into bool ``out`` ``[T, M]``.

    Large layers run in cache-sized column blocks (all T steps per block), one block per
    op call below torch's parallel grain, spread over ``torch.get_num_threads()`` Python
    threads (torch releases the GIL): no OpenMP barrier per elementwise op, which on a
    busy 2-core machine costs more than the op itself.
    """
    global _POOL
    m = out.shape[1]
    workers = torch.get_num_threads()
    if m <= 2 * _CHUNK or workers == 1 or xs.device.type != "cpu":  # a GPU runs each op over the whole layer
        _lif_block(op, xs, out, 0, m, [])
        return
    blocks = [(a, min(a + _CHUNK, m)) for a in range(0, m, _CHUNK)]
    if _POOL is None or _POOL._max_workers != workers:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sjlt-lif")

    def work(k: int) -> None:
        scratch: list = []
        for a, b in blocks[k::workers]:
            _lif_block(op, xs, out, a, b, scratch)

    for f in [_POOL.submit(work, k) for k in range(workers)]:
        f.result()


class _Reference(_Engine):
    """Every op in float64: the yardstick the engine must match (records z, H, spikes)."""

    dtype = torch.float64

    def __init__(self, record: dict) -> None:
        super().__init__("fp32", "fp32", record)

    def stem(self, op: Stem, x: torch.Tensor) -> torch.Tensor:
        w = op.weight.q().double() if isinstance(op.weight, Ternary) else op.weight.double()
        y = F.conv2d(x.double(), w, None, op.stride, op.padding)
        y = y * op.affine.scale64.view(1, -1, 1, 1) + op.affine.bias64.view(1, -1, 1, 1)
        return y if op.pool is None else F.avg_pool2d(y, op.pool.kernel, op.pool.stride, op.pool.padding)

    def conv(self, op: IntConv, a: _Bin) -> torch.Tensor:
        z = _z_float64(op, a)
        self.record.setdefault(op.name, {})["z"] = z
        if op.pool is not None:
            scale, bias = _pool_affine(op, tuple(z.shape[2:]), torch.float64, z.device)
            z = _sum_pool(z, op.pool)
            self.record.setdefault(op.pool.name, {})["z"] = z
            return z * scale + bias
        return z * op.affine.scale64.view(1, -1, 1, 1) + op.affine.bias64.view(1, -1, 1, 1)

    def _linear_z(self, op: IntLinear, a: _Bin | _Count) -> tuple[torch.Tensor, int]:
        x = a.t.double()
        hw = a.hw if isinstance(a, _Count) else 1
        if a.pm1:
            x = 2 * x - hw
        z = x @ op.weight.q().double().t()
        self.record.setdefault(op.name, {})["z"] = z
        return z, hw

    def linear(self, op: IntLinear, a: _Bin | _Count) -> torch.Tensor:
        z, hw = self._linear_z(op, a)
        return z * (op.affine.scale64 / hw) + op.affine.bias64

    def globalpool(self, op: GlobalPool, a: _Bin) -> _Count:
        return _Count(a.t.double().sum(dim=(2, 3)), a.pm1, a.t.shape[2] * a.t.shape[3])

    def avgpool(self, op: AvgPool, a: _Bin) -> _Bin:
        out = _sum_pool(a.t.double(), op)
        self.record.setdefault(op.name, {})["z"] = out
        return _Bin(out, a.pm1)

    def as_real(self, a: _Bin, div: int = 1) -> torch.Tensor:
        x = a.t.double() / div
        return 2 * x - 1 if a.pm1 else x

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    def neuron(self, op: Neuron, x: torch.Tensor, T: int, const: bool) -> _Bin:
        if op.kind == "sign":
            h = x.unsqueeze(0)
            spikes = (x >= 0).to(torch.uint8)
            self.record.setdefault(op.name, {}).update(h=h, spikes=spikes)
            return _Bin(spikes, True)
        xs = x.unsqueeze(0).expand(T, *x.shape) if const else x.reshape(T, -1, *x.shape[1:])
        reset = 0.0 if op.v_reset is None else op.v_reset
        v = torch.full_like(xs[0], reset)
        hs, ss = [], []
        for t in range(T):
            if op.kind == "if":
                h = v + xs[t]
            elif op.decay_input:
                h = v + (xs[t] - (v - reset)) / op.tau
            else:
                h = v - (v - reset) / op.tau + xs[t]
            s = h >= op.v_threshold
            v = h - s.double() * op.v_threshold if op.v_reset is None else torch.where(s, reset, h)
            hs.append(h)
            ss.append(s)
        spikes = torch.stack(ss).to(torch.uint8).reshape(-1, *x.shape[1:])
        self.record.setdefault(op.name, {}).update(h=torch.stack(hs), spikes=spikes)
        return _Bin(spikes, False)


def _run(stem: Stem, ops: list[Op], T: int | None, x: torch.Tensor, be: _Engine) -> torch.Tensor:
    steps = T or 1
    y = be.stem(stem, x)
    a = be.neuron(ops[0], y, steps, const=True)
    value: Any = a
    for op in ops[1:-1]:
        if isinstance(op, Block):
            s1 = be.neuron(op.sn1, be.conv(op.conv1, value), steps, const=False)
            x2 = be.conv(op.conv2, s1)
            xs = be.conv(op.shortcut, value) if op.shortcut is not None else be.as_real(value, op.in_div)
            value = be.neuron(op.sn2, be.add(x2, xs), steps, const=False)
        elif isinstance(op, IntConv):
            value = be.conv(op, value)
        elif isinstance(op, IntLinear):
            value = be.linear(op, value)
        elif isinstance(op, Neuron):
            value = be.neuron(op, value, steps, const=False)
        elif isinstance(op, MaxPool):
            value = be.maxpool(op, value)
        elif isinstance(op, AvgPool):
            value = be.avgpool(op, value)
        elif isinstance(op, GlobalPool):
            value = be.globalpool(op, value)
        elif isinstance(op, Flatten):
            value = _Bin(value.t.reshape(value.t.shape[0], -1).contiguous(), value.pm1)
    if isinstance(value, torch.Tensor):
        raise UsageError("the readout must see binary activations or their counts")
    return be.readout(ops[-1], value, steps)


def _int_layers(ops: list[Op]) -> list[IntConv | IntLinear]:
    out: list[IntConv | IntLinear] = []
    for op in ops:
        if isinstance(op, Block):
            out += [op.conv1, op.conv2] + ([op.shortcut] if op.shortcut else [])
        elif isinstance(op, (IntConv, IntLinear)):
            out.append(op)
    return out


def net_neurons(ops: list[Op]) -> list[Neuron]:
    out: list[Neuron] = []
    for op in ops:
        if isinstance(op, Block):
            out += [op.sn1, op.sn2]
        elif isinstance(op, Neuron):
            out.append(op)
    return out


# -- the compiled net -------------------------------------------------------------------


class CompiledNet(nn.Module):
    """The exact integer inference net of one ticket (eval only; CPU, or a CUDA GPU)."""

    def __init__(self, stem: Stem, ops: list[Op], timesteps: int | None, engine: str, first_layer: str,
                 storage: str, source_model: nn.Module | None = None, lif: str = "torch",
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.stem, self.ops, self.timesteps = stem, ops, timesteps
        self.engine, self.first_layer, self.storage, self.lif = engine, first_layer, storage, lif
        self.device = torch.device(device)
        self._fp32_weight_count = weight_count(source_model) if source_model is not None else None
        # the CPU engines are exact by construction and tested; a GPU's first call checks itself
        self.verified = self.device.type == "cpu"
        self.no_cudnn = False
        if self.device.type != "cpu":
            for layer in [*self.layers(), self.stem]:
                layer.affine.to(self.device)
                if isinstance(layer.weight, Ternary):
                    layer.weight.to(self.device)
            if not isinstance(self.stem.weight, Ternary):
                self.stem.weight = self.stem.weight.to(self.device)

    def _engine(self, record: dict | None) -> _Engine:
        return _Engine(self.engine, self.first_layer, record, lif=self.lif, no_cudnn=self.no_cudnn)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """float64 logits ``[N, classes]`` (the mean over T) of the normalized images ``x``.

        The readout sums its exact integer products over T before the one affine map,
        so equal integer sums give equal logits (ties stay ties) on every engine.
        """
        x = x.to(self.device)
        if not self.verified:
            self._verify(x)
        return _run(self.stem, self.ops, self.timesteps, x, self._engine(record))

    def _verify(self, x: torch.Tensor) -> None:
        """Check every integer convolution of one real call against float64 on the device.

        A GPU library may pick an algorithm that transforms the operands (cuDNN's Winograd
        or FFT) and rounds. On a mismatch the convolutions run without cuDNN (plain im2col +
        GEMM, exact within the grouped bound) and are checked again; a second mismatch is an
        error, never a silently inexact engine.
        """
        for attempt in ("cudnn", "no cudnn"):
            be = self._engine(None)
            be.inexact = []
            _run(self.stem, self.ops, self.timesteps, x[:2], be)
            if not be.inexact:
                self.verified = True
                log.info("engine %s on %s: every integer convolution equals float64 (%s)", self.engine,
                         self.device, attempt)
                return
            if self.no_cudnn:
                break
            log.warning("engine %s on %s: layers %s inexact with cuDNN; running them without it", self.engine,
                        self.device, ", ".join(be.inexact[:3]))
            self.no_cudnn = True
        raise UsageError(f"engine {self.engine} on {self.device} is not exact for layer {be.inexact[0]} "
                         "(its sums differ from float64); use --engine fp32 or run on the CPU")

    def layers(self) -> list[IntConv | IntLinear]:
        return _int_layers(self.ops)

    def neurons(self) -> list[Neuron]:
        return net_neurons(self.ops)

    def resident_bytes(self) -> dict:
        """Bytes the engine keeps between calls: weights (q + alpha; a dense stem in fp32), affine."""
        w = sum(layer.weight.bytes for layer in self.layers())
        stem = self.stem.weight.bytes if isinstance(self.stem.weight, Ternary) else self.stem.weight.numel() * 4
        affine = sum(2 * 4 * layer.affine.scale.numel() for layer in [*self.layers(), self.stem])
        return {"weights": w + stem, "affine": affine, "total": w + stem + affine}

    def extra_repr(self) -> str:
        return (f"engine={self.engine}, first_layer={self.first_layer}, storage={self.storage}, lif={self.lif}, "
                f"T={self.timesteps}")


def weight_count(model: nn.Module) -> int:
    """Number of conv / linear weights (and linear biases) of a model."""
    from ..pruners.common import prunable_layers

    n = 0
    for _, m in prunable_layers(model):
        n += effective_weight(m).numel() + (m.bias.numel() if getattr(m, "bias", None) is not None else 0)
    return n


def weight_bytes(model: nn.Module) -> dict:
    """Resident bytes of a model run in fp32: conv / linear weights, and everything it holds."""
    weights = 4 * weight_count(model)
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return {"weights": weights, "total": total}


def compile_model(
    model: nn.Module,
    *,
    engine: str = "auto",
    first_layer: str = "fp32",
    storage: str = "packed",
    lif: str = "auto",
    device: str | torch.device = "cpu",
) -> CompiledNet:
    """Compile a loaded binary-weight spiking (or sign) model into a :class:`CompiledNet`.

    ``engine``: ``auto`` | ``int8`` | ``bf16`` | ``fp32`` (see :mod:`.cpu`); ``first_layer``:
    the real-image stem in ``fp32`` or ``bf16``; ``storage``: resident ``q`` ``packed``
    (1.6 bit, unpacked per call) or ``int8`` (the engine's own form, kept); ``lif``: the
    membrane update in ``torch`` ops, the fused C++ kernel (``native``, built on first use;
    bit-identical, 4-10x faster), or ``auto`` (the default: native when it builds); ``device``:
    ``cpu``, ``cuda[:N]`` (engines fp16 / bf16 / fp32, torch-op LIF; the first call checks every
    integer convolution against float64 there) or ``auto`` (cuda when there is one).
    """
    if first_layer not in FIRST_LAYER:
        raise UsageError(f"unknown first-layer precision {first_layer!r}; valid: {', '.join(FIRST_LAYER)}")
    if storage not in STORAGE:
        raise UsageError(f"unknown weight storage {storage!r}; valid: {', '.join(STORAGE)}")
    if lif not in LIF_KERNELS:
        raise UsageError(f"unknown LIF kernel {lif!r}; valid: {', '.join(LIF_KERNELS)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device} asked for, but torch sees no CUDA GPU here; use --device cpu")
    chosen = choose_engine(engine, device=device)
    if device.type != "cpu":
        lif = "torch"  # the native kernel is C++ for the CPU
    if lif != "torch":
        if native_lif() is None:
            if lif == "native":
                raise UsageError("the native LIF kernel could not be built (needs a C++ compiler); use --lif torch")
            lif = "torch"
        else:
            lif = "native"
    was_training = model.training
    model.eval()
    try:
        stem, ops = _plan(model, storage)
    finally:
        model.train(was_training)
    timesteps = getattr(model, "timesteps", None)
    if timesteps is None and any(n.kind != "sign" for n in net_neurons(ops)):
        raise UsageError("a model without timesteps must use sign activations (bnn-act-lt)")
    if chosen in _GROUPED:
        bound = _EXACT_UP_TO[_GROUPED[chosen]]
        for layer in _int_layers(ops):
            if isinstance(layer, IntConv) and (k := math.prod(layer.weight.shape[2:])) * layer.in_max > bound:
                counts = f" of average-pool counts up to {layer.in_max}" if layer.in_max > 1 else ""
                raise UsageError(f"layer {layer.name}: a {layer.weight.shape[2]}x{layer.weight.shape[3]} kernel sums "
                                 f"{k} products{counts} per channel, beyond {bound} (exact in {chosen}); "
                                 "use --engine fp32")
    if chosen == "int8":  # (a Linear reading larger counts takes the exact fp32 matmul instead)
        for layer in _int_layers(ops):
            if isinstance(layer, IntConv) and layer.in_max > _INT8_COUNTS:
                raise UsageError(f"layer {layer.name}: its input holds average-pool counts up to {layer.in_max}, "
                                 f"beyond {_INT8_COUNTS} (the int8 engine's inputs); use --engine fp32")
    net = CompiledNet(stem, ops, timesteps, chosen, first_layer, storage, model, lif, device)
    info = cpu_info()
    where = f"{info.model}; {' '.join(info.flags) or 'no special flags'}" if device.type == "cpu" else str(device)
    log.info("compiled %d integer layers, engine %s (%s), storage %s, LIF %s", len(net.layers()), chosen, where,
             storage, lif)
    return net


@torch.no_grad()
def reference_forward(net: CompiledNet, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """float64 logits of ``net``'s program and per-layer records (``z``; neurons: ``h``, ``spikes``)."""
    record: dict = {}
    with _exact_algorithms(net.device.type != "cpu"):  # float64 on a GPU: plain GEMM kernels too
        logits = _run(net.stem, net.ops, net.timesteps, x.to(net.device), _Reference(record))
    return logits, record


def fan_in(op: IntConv | IntLinear) -> int:
    return int(math.prod(op.weight.shape[1:]))
