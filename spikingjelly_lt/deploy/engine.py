"""Run a program: the engine (fp32 values, binary activations as uint8, exact integer sums from
the int8 / bf16 / fp16 / fp32 convolutions of :mod:`.cpu`) and its float64 reference (the
exactness yardstick), the LIF kernels (torch ops in cache-sized blocks, or the fused C++ one),
and :func:`run_program`, the one loop both back-ends share."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .program import AvgPool, Block, Flatten, GlobalPool, IntConv, IntLinear, MaxPool, Neuron, Op, Stem, Ternary

# every integer up to these magnitudes is exact in the dtype: a grouped engine keeps each
# partial sum within it, so the sum is exact whatever precision the convolution accumulates in
EXACT_UP_TO = {torch.bfloat16: 256, torch.float16: 2048}
GROUPED = {"bf16": torch.bfloat16, "fp16": torch.float16}
INT8_COUNTS = 127  # the largest average-pool count an int8 (u8) input may carry
_CL = torch.channels_last


@contextlib.contextmanager
def exact_algorithms(no_cudnn: bool):
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
        elif kind in GROUPED:
            dtype = GROUPED[kind]
            # >= 1: compile_model checks the kernel (times the largest average-pool count it reads)
            per = EXACT_UP_TO[dtype] // (q.shape[2] * q.shape[3] * op.in_max)
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
        if self.engine in GROUPED:
            sb = s.to(GROUPED[self.engine])
            z = None
            with exact_algorithms(self.no_cudnn):
                for c0, c1, wg in w:
                    part = F.conv2d(sb[:, c0:c1], wg, None, op.stride, op.padding).float()
                    z = part if z is None else z.add_(part)
            return z
        with exact_algorithms(self.no_cudnn):
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
            with exact_algorithms(True):
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
        if self.engine == "int8" and x.dtype == torch.uint8 and op.in_max <= INT8_COUNTS:
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


def run_program(stem: Stem, ops: list[Op], T: int | None, x: torch.Tensor, be: _Engine) -> torch.Tensor:
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
