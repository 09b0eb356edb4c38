"""Fast multi-step LIF neuron for CPU training, numerically equal to SpikingJelly's ``LIFNode``.

SpikingJelly's CPU path runs a Python loop over ``T`` of about a dozen small
autograd-recorded kernels per step plus ``torch.stack``; on CPU the neuron then
costs about as much as a convolution. Here the whole sequence is one
``torch.autograd.Function``: the forward runs 4 kernels per step into
preallocated buffers and saves only the charged membrane ``H`` ([T, ...]); the
backward evaluates the surrogate derivative for all ``T`` in 3 passes, then does
BPTT through the membrane with 2 kernels per step. About 3x faster than
``neuron.LIFNode`` for forward+backward on a 2-core CPU (see ``scripts/lif_micro.py``);
what remains is memory-bandwidth bound. TorchScript gave no gain (no CPU fusion).

Forward results are bit-identical to SpikingJelly's: the charge keeps its exact
operation order ``V + (X - (V - V_reset)) / tau``. The loop runs on the negated
membrane ``-V`` (IEEE negation is exact and rounding is sign-symmetric), which
turns the hard reset ``V = V_reset if H >= V_th else H`` into the single kernel
``threshold(-H, -V_th, -V_reset)``. Gradients agree to float32 rounding.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch

from .._sj import base, surrogate

__all__ = ["FastLIFNode", "fast_lif_multi_step", "membrane_dtype"]

log = logging.getLogger("spikingjelly_lt")

_ATAN = 1
_SIGMOID = 0


def _surrogate_kind(fn: object) -> tuple[int, float]:
    """Map a SpikingJelly surrogate to ``(kind, alpha)``; only kinds with a hand-written BPTT."""
    if isinstance(fn, (surrogate.ATan, surrogate.Sigmoid)) and getattr(fn, "spiking", True):
        alpha = fn.alpha
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            return (_ATAN if isinstance(fn, surrogate.ATan) else _SIGMOID), float(alpha)
    raise TypeError(
        "FastLIFNode supports surrogate.ATan / surrogate.Sigmoid with spiking=True and a "
        f"float alpha, got {fn!r}"
    )


def membrane_dtype(input_dtype: torch.dtype) -> torch.dtype:
    """The membrane's dtype for inputs of ``input_dtype``: never below float32.

    Under bf16/fp16 autocast the charge ``V + (X - V) / tau`` and the threshold test
    stay in float32, so a spike never flips on a rounded membrane; only the input
    current (a convolution's output) arrives in low precision.
    """
    return torch.promote_types(input_dtype, torch.float32)


def _empty_steps(lead: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized ``[*lead, *like.shape]`` tensor whose every step has ``like``'s layout.

    Keeps channels_last (or any dense permuted) layout through the neuron: a plain
    ``torch.empty`` would hand the next convolution NCHW spikes and make it convert.
    """
    order = sorted(range(like.dim()), key=lambda i: -like.stride(i))  # outermost first
    buf = torch.empty((*lead, *(like.shape[i] for i in order)), dtype=dtype, device=like.device)
    inverse = [order.index(i) for i in range(like.dim())]
    return buf.permute(*range(len(lead)), *(len(lead) + i for i in inverse))


def _lif_forward(
    x_seq: torch.Tensor,
    u: torch.Tensor,
    tau: float,
    decay_input: bool,
    v_threshold: float,
    v_reset: Optional[float],
    keep_h: bool,
    store_v_seq: bool,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Run the LIF recurrence on the negated membrane ``u = -V`` (``u`` is consumed).

    Returns ``(spikes, u_final, -H sequence or None, -V sequence or None)``.
    """
    T = x_seq.shape[0]
    # The membrane (u, -H) runs in u's dtype (float32 under bf16 autocast); spikes are
    # exact in any float dtype and leave in the input's, so the next layer casts nothing.
    spikes = _empty_steps((T,), u, x_seq.dtype)
    nh_seq = _empty_steps((T,), u, u.dtype) if keep_h else None
    scratch = None if keep_h else torch.empty_like(u)
    nu_seq = _empty_steps((T,), u, u.dtype) if store_v_seq else None
    tau_t = u.new_full((), tau)  # on u's device: a fill kernel, never a host -> device copy
    r = 0.0 if v_reset is None else v_reset
    neg_thr = -v_threshold
    for t in range(T):
        g = nh_seq[t] if nh_seq is not None else scratch
        # g = -H[t]; same rounding as SpikingJelly's charge, with V = -u.
        ur = u if r == 0.0 else u + r  # -(V - V_reset)
        if decay_input:  # H = V + (X - (V - Vr)) / tau  ->  -H = u - (X + ur) / tau
            torch.add(x_seq[t], ur, out=g)
            torch.addcdiv(u, g, tau_t, value=-1.0, out=g)
        else:  # H = (V - (V - Vr) / tau) + X  ->  -H = (u - ur / tau) - X
            torch.addcdiv(u, ur, tau_t, value=-1.0, out=g)
            g.sub_(x_seq[t])
        s = spikes[t]
        torch.le(g, neg_thr, out=s)  # S = H >= V_th
        u_next = nu_seq[t] if nu_seq is not None else u
        if v_reset is None:  # V = H - S * V_th
            torch.add(g, s, alpha=v_threshold, out=u_next)
        else:  # V = V_reset if S else H
            torch.ops.aten.threshold.out(g, neg_thr, -v_reset, out=u_next)
        u = u_next
    return spikes, u, nh_seq, nu_seq


def _surrogate_grad_(w: torch.Tensor, kind: int, alpha: float) -> torch.Tensor:
    """Surrogate derivative at ``H - V_th = -w`` (both kinds are even in ``w``); in place."""
    if kind == _ATAN:  # alpha / 2 / (1 + (pi/2 alpha x)^2)
        c2 = (math.pi / 2 * alpha) ** 2
        return w.mul_(w).mul_(c2 * 2.0 / alpha).add_(2.0 / alpha).reciprocal_()
    s = w.mul_(alpha).sigmoid_()  # alpha * s * (1 - s)
    return s.mul_(1.0 - s).mul_(alpha)


def _native_kernel():
    """The fused C++ kernel (``_lif_train.cpp``), built once per machine, or None.

    Loading it turns on glibc heap reuse for the process (see :func:`.._native.load_kernel`).
    """
    from .._native import KERNELS, load_kernel

    return load_kernel("sjlt_lif_train", str(KERNELS["sjlt_lif_train"]))


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t`` covers its memory without gaps or overlaps (any dim order)."""
    expected = 1
    for i in sorted(range(t.dim()), key=lambda i: t.stride(i)):
        if t.shape[i] != 1:
            if t.stride(i) != expected:
                return False
            expected *= t.shape[i]
    return True


_NATIVE_DTYPES = (torch.float32, torch.bfloat16)


def _native_forward(x_seq, v, tau, decay_input, v_threshold, v_reset, keep_h):
    """``(spikes, v_final, -H or None)`` from the fused kernel, or None where it does not apply.

    It applies on the CPU to float32 / bfloat16 inputs whose every step has the membrane's
    dense layout (a step stride of 0, a repeated input, is fine).
    """
    if (x_seq.device.type != "cpu" or x_seq.dtype not in _NATIVE_DTYPES or v.dtype != torch.float32
            or x_seq.shape[1:] != v.shape or not _dense(v) or x_seq[0].stride() != v.stride()
            or x_seq.stride(0) not in (0, v.numel()) or x_seq.shape[0] == 0):
        return None
    kernel = _native_kernel()
    if kernel is None:
        return None
    T = x_seq.shape[0]
    spikes = _empty_steps((T,), v, x_seq.dtype)
    nh = _empty_steps((T,), v, torch.float32) if keep_h else torch.empty(0)
    v_out = torch.empty_like(v)
    hard = v_reset is not None
    kernel.lif_forward(x_seq, spikes, nh, v, v_out, tau, v_threshold, v_reset if hard else 0.0, hard, decay_input)
    return spikes, v_out, (nh if keep_h else None)


class _FastLIF(torch.autograd.Function):
    """Whole-sequence LIF with hand-written BPTT; saves only ``-H`` ([T, ...])."""

    @staticmethod
    def forward(
        ctx,
        x_seq: torch.Tensor,
        v: torch.Tensor,
        tau: float,
        decay_input: bool,
        v_threshold: float,
        v_reset: Optional[float],
        detach_reset: bool,
        kind: int,
        alpha: float,
        store_v_seq: bool,
        native: bool,
    ):
        ctx.cfg = (tau, decay_input, v_threshold, v_reset, detach_reset, kind, alpha)
        ctx.x_dtype = x_seq.dtype
        ctx.native = native
        ctx.set_materialize_grads(False)
        if native and not store_v_seq:
            out = _native_forward(x_seq, v, tau, decay_input, v_threshold, v_reset, True)
            if out is not None:
                ctx.save_for_backward(out[2])
                return out[0], out[1]
        spikes, u, nh_seq, nu_seq = _lif_forward(
            x_seq, torch.neg(v), tau, decay_input, v_threshold, v_reset, True, store_v_seq
        )
        ctx.save_for_backward(nh_seq)
        if store_v_seq:
            v_seq = nu_seq.neg_()
            return spikes, v_seq[-1].clone(), v_seq
        return spikes, u.neg_()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_spike, g_v, g_vseq=None):
        (nh,) = ctx.saved_tensors
        tau, decay_input, thr, v_reset, detach_reset, kind, alpha = ctx.cfg
        T = nh.shape[0]
        k = 1.0 - 1.0 / tau  # dH[t+1]/dV[t], both decay_input modes
        scale = 1.0 / tau if decay_input else 1.0  # dH[t]/dX[t], folded into B
        if (ctx.native and kind == _ATAN and detach_reset and g_spike is not None and g_v is None
                and g_vseq is None and not ctx.needs_input_grad[1] and nh.device.type == "cpu"
                and g_spike.dtype in _NATIVE_DTYPES and (kernel := _native_kernel()) is not None):
            if g_spike.stride() != nh.stride():
                g_spike = _empty_steps((T,), nh[0], g_spike.dtype).copy_(g_spike)
            g_x = _empty_steps((T,), nh[0], ctx.x_dtype if ctx.x_dtype in _NATIVE_DTYPES else nh.dtype)
            a0 = 2.0 / alpha / scale
            kernel.lif_backward(nh, g_spike, g_x, thr, a0, (math.pi / 2 * alpha) ** 2 * a0, k, v_reset is not None)
            return g_x, None, None, None, None, None, None, None, None, None, None
        # One allocation: G[:T] = B = scale * dL/dH = dL/dX (returned), G[T] = per-step scratch.
        G = _empty_steps((T + 1,), nh[0], nh.dtype)
        B, scratch = G[:T], G[T]
        R = None  # dense dV[t]/dH[t] (only without detach_reset)
        if kind == _ATAN and detach_reset and g_spike is not None:
            # B = scale * g * alpha/2 / (1 + c^2 w^2) = g / (a0 + a2 w^2): 3 passes.
            a0 = 2.0 / alpha / scale
            a2 = (math.pi / 2 * alpha) ** 2 * a0
            torch.add(nh, thr, out=B)
            torch.addcmul(B.new_full((), a0), B, B, value=a2, out=B)  # self on B's device (CUDA refuses a CPU one)
            torch.div(g_spike, B, out=B)
        elif g_spike is not None or not detach_reset:
            sg = _surrogate_grad_(torch.add(nh, thr, out=B), kind, alpha)
            if not detach_reset:
                if v_reset is None:  # 1 - V_th * sg
                    R = torch.mul(sg, -thr).add_(1.0)
                else:  # (1 - S) + (V_reset - H) * sg
                    R = torch.gt(nh, -thr, out=torch.empty_like(nh)).addcmul_(nh + v_reset, sg)
            if g_spike is not None:
                B.mul_(g_spike)
            else:
                B.zero_()
            if scale != 1.0:
                B.mul_(scale)
        else:
            B.zero_()
        mask_reset = v_reset is not None and detach_reset  # dV/dH = 1 - S, rebuilt per step
        for t in range(T - 1, -1, -1):
            terms = [(B[t + 1], k)] if t < T - 1 else []
            if g_vseq is not None:
                terms.append((g_vseq[t], scale))
            if g_v is not None and t == T - 1:
                terms.append((g_v, scale))
            if not terms:
                continue
            if mask_reset:
                Rt = torch.gt(nh[t], -thr, out=scratch)
            else:
                Rt = None if R is None else R[t]
            for grad, c in terms:
                if Rt is None:
                    B[t].add_(grad, alpha=c)
                else:
                    B[t].addcmul_(grad, Rt, value=c)
        g_v0 = B[0] * (k / scale) if ctx.needs_input_grad[1] else None
        g_x = B if ctx.needs_input_grad[0] else None
        return g_x, g_v0, None, None, None, None, None, None, None, None, None


def fast_lif_multi_step(
    x_seq: torch.Tensor,
    v: torch.Tensor,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: Optional[float] = 0.0,
    surrogate_function: Optional[surrogate.SurrogateFunctionBase] = None,
    detach_reset: bool = False,
    store_v_seq: bool = False,
    native: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Functional LIF over ``x_seq`` ``[T, N, ...]`` from membrane ``v`` ``[N, ...]``.

    Same contract as ``spikingjelly...functional.lif_multi_step``: returns
    ``(spike_seq, v_final, v_seq or None)``; ``surrogate_function`` defaults to
    ``ATan(alpha=2.0)``. Gradients flow to ``x_seq`` and ``v``. ``native`` uses the
    fused C++ kernel where it applies (same spikes and membranes bit for bit; the
    gradient equal to float32 rounding); ``False`` forces the torch ops.
    """
    fn = surrogate.ATan() if surrogate_function is None else surrogate_function
    kind, alpha = _surrogate_kind(fn)
    tau = float(tau)
    if not tau > 1.0:
        raise ValueError(f"tau must be > 1, got {tau}")
    dtype = membrane_dtype(x_seq.dtype)
    if v.dtype != dtype or v.device != x_seq.device:
        v = v.to(dtype=dtype, device=x_seq.device)
    if torch.is_grad_enabled() and (x_seq.requires_grad or v.requires_grad):
        out = _FastLIF.apply(
            x_seq, v, tau, decay_input, v_threshold, v_reset, detach_reset, kind, alpha, store_v_seq, native
        )
        return out[0], out[1], (out[2] if store_v_seq else None)
    if native and not store_v_seq:
        out = _native_forward(x_seq, v, tau, decay_input, v_threshold, v_reset, False)
        if out is not None:
            return out[0], out[1], None
    spikes, u, _, nu_seq = _lif_forward(
        x_seq, torch.neg(v), tau, decay_input, v_threshold, v_reset, False, store_v_seq
    )
    if store_v_seq:
        v_seq = nu_seq.neg_()
        return spikes, v_seq[-1].clone(), v_seq
    return spikes, u.neg_(), None


class FastLIFNode(base.MemoryModule):
    """Drop-in for ``neuron.LIFNode`` (torch backend) with a fused whole-sequence autograd op.

    Same constructor and state semantics as SpikingJelly's ``LIFNode``: membrane
    ``v`` is a registered memory that persists across calls (multi- and
    single-step chain) and is restored by ``functional.reset_net``; ``step_mode``
    is ``'s'`` (input ``[N, ...]``) or ``'m'`` (input ``[T, N, ...]``). Supported
    surrogates: ``surrogate.ATan`` (default here, alpha 2.0) and ``surrogate.Sigmoid``.
    Note SpikingJelly 2.0's own ``LIFNode`` defaults to ``Sigmoid(alpha=4.0)``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = 0.0,
        surrogate_function: Optional[surrogate.SurrogateFunctionBase] = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        native: bool = True,
    ) -> None:
        super().__init__()
        if not float(tau) > 1.0:
            raise ValueError(f"tau must be > 1, got {tau}")
        if surrogate_function is None:
            surrogate_function = surrogate.ATan()
        _surrogate_kind(surrogate_function)  # fail early on unsupported surrogates
        self.tau = float(tau)
        self.decay_input = bool(decay_input)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.surrogate_function = surrogate_function
        self.detach_reset = bool(detach_reset)
        self.step_mode = step_mode
        self.store_v_seq = store_v_seq
        self.native = bool(native)  # the fused C++ kernel where it applies (see fast_lif_multi_step)
        self.register_memory("v", 0.0 if v_reset is None else self.v_reset)
        log.debug("FastLIFNode(%s)", self.extra_repr())

    @property
    def store_v_seq(self) -> bool:
        """Whether the last multi-step call's membrane trace is kept in ``self.v_seq``."""
        return self._store_v_seq

    @store_v_seq.setter
    def store_v_seq(self, value: bool) -> None:
        self._store_v_seq = bool(value)
        self.v_seq = None

    def reset(self) -> None:
        super().reset()
        self.v_seq = None

    def detach(self) -> None:
        super().detach()
        if isinstance(self.v_seq, torch.Tensor):
            self.v_seq = self.v_seq.detach()

    def extra_repr(self) -> str:
        return (
            f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}, step_mode={self.step_mode}, tau={self.tau}"
        )

    def materialize_states(
        self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...], step_mode: str
    ) -> tuple[object, ...]:
        """Turn the scalar reset sentinel (or a stale-shaped ``v``) into a tensor like one step."""
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v = states[0]
        dtype = membrane_dtype(x.dtype)
        if isinstance(v, (int, float)):
            v = torch.full_like(x, float(v), dtype=dtype)
        elif isinstance(v, torch.Tensor):
            if v.shape != x.shape:
                v = torch.full_like(x, 0.0 if self.v_reset is None else self.v_reset, dtype=dtype)
            elif v.dtype != dtype or v.device != x.device:
                v = v.to(dtype=dtype, device=x.device)
        return (v, *states[1:])

    def _run(self, x_seq: torch.Tensor, v: torch.Tensor, store_v_seq: bool):
        return fast_lif_multi_step(
            x_seq,
            v,
            self.tau,
            self.decay_input,
            self.v_threshold,
            self.v_reset,
            self.surrogate_function,
            self.detach_reset,
            store_v_seq,
            self.native,
        )

    def single_step_functional_forward(
        self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...], **kwargs: object
    ) -> tuple[tuple[torch.Tensor, ...], tuple[object, ...]]:
        spikes, v, _ = self._run(inputs[0].unsqueeze(0), states[0], False)
        return (spikes[0],), (v, *states[1:])

    def multi_step_functional_forward(
        self, inputs: tuple[torch.Tensor, ...], states: tuple[object, ...], **kwargs: object
    ) -> tuple[tuple[torch.Tensor, ...], tuple[object, ...]]:
        spikes, v, _ = self._run(inputs[0], states[0], False)
        return (spikes,), (v, *states[1:])

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        spike = super().single_step_forward(x, *args, **kwargs)
        if self.store_v_seq:  # append like SpikingJelly's BaseNode (restart on shape change)
            v = self.v.unsqueeze(0)
            seq = self.v_seq
            ok = seq is not None and seq.shape[1:] == v.shape[1:] and seq.dtype == v.dtype
            self.v_seq = torch.cat((seq, v)) if ok else v.clone()
        return spike

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not self.store_v_seq:
            return super().multi_step_forward(x_seq, *args, **kwargs)
        (v,) = self.materialize_states((x_seq,), tuple(self._memories.values()), "m")
        spikes, v, v_seq = self._run(x_seq, v, True)
        self._memories["v"] = v
        self.v_seq = v_seq
        return spikes
