"""Neurons ("binary neuron layers"), each a built-in plugin: lif, if, relu, sign.

All work on ``[T, N, ...]`` (step mode 'm') and ``[N, ...]`` (step mode 's').
``lif`` / ``if`` are SpikingJelly nodes (hard reset to 0, ATan surrogate,
detach_reset); ``sign`` is the binary activation of BNN-1/1 (MPT-1/1).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import hookimpl
from .._sj import base, neuron, surrogate

__all__ = ["lif", "if_node", "relu", "sign", "Sign", "ReLU", "SPIKING_NEURONS"]

SPIKING_NEURONS = frozenset({"lif", "if"})


LIF_IMPLS = ("auto", "fast", "torch", "spikingjelly")


def lif(*, tau: float = 2.0, v_threshold: float = 1.0, step_mode: str = "m", impl: str = "fast", **_) -> nn.Module:
    """LIF: tau 2.0, threshold 1.0, hard reset to 0, ATan surrogate, detach_reset.

    ``impl='fast'`` (default) is :class:`~spikingjelly_lt.neuron.fast_lif.FastLIFNode`, one
    autograd op over all T steps, bit-identical spikes to SpikingJelly's ``LIFNode``
    and gradients equal to float32 rounding (tests compare them), running the fused C++
    kernel where it builds; ``'torch'`` is the same op in torch ops (``native=False``);
    ``'auto'`` builds the fast node, and the trainer sets ``native`` to the measured
    choice (:mod:`spikingjelly_lt.training.execpath`); ``'spikingjelly'`` is
    SpikingJelly's ``LIFNode`` itself.
    """
    from ..errors import check_choice

    if check_choice("LIF implementation", impl, LIF_IMPLS) != "spikingjelly":
        from .fast_lif import FastLIFNode

        return FastLIFNode(
            tau=tau, v_threshold=v_threshold, v_reset=0.0, surrogate_function=surrogate.ATan(),
            detach_reset=True, step_mode=step_mode, native=impl != "torch",
        )
    return neuron.LIFNode(
        tau=tau,
        v_threshold=v_threshold,
        v_reset=0.0,
        surrogate_function=surrogate.ATan(),
        detach_reset=True,
        step_mode=step_mode,
    )


def if_node(*, v_threshold: float = 1.0, step_mode: str = "m", **_) -> nn.Module:
    """SpikingJelly ``IFNode`` with the same reset and surrogate as ``lif``."""
    return neuron.IFNode(
        v_threshold=v_threshold,
        v_reset=0.0,
        surrogate_function=surrogate.ATan(),
        detach_reset=True,
        step_mode=step_mode,
    )


class ReLU(nn.ReLU, base.StepModule):
    """The ANN activation; elementwise, so both step modes are the same op."""

    def __init__(self, step_mode: str = "s"):
        super().__init__()
        self.step_mode = step_mode


class _Sign(torch.autograd.Function):
    """sign forward (+1 at 0); a subclass gives the backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _BiRealSign(_Sign):
    """Bi-Real piecewise-quadratic backward: 2 - 2|x| on |x| < 1, else 0."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2.0 - 2.0 * x.abs()).clamp_min(0.0)


class _ClippedSign(_Sign):
    """clipped identity (straight-through) backward: 1 on |x| <= 1."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class Sign(nn.Module, base.StepModule):
    """Binary activation, outputs exactly ±1 (0 maps to +1)."""

    GRADIENTS = {"bireal": _BiRealSign, "ste": _ClippedSign}

    def __init__(self, gradient: str = "bireal", step_mode: str = "s"):
        super().__init__()
        from ..errors import check_choice

        self.gradient = check_choice("sign gradient", gradient, self.GRADIENTS)
        self.step_mode = step_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.GRADIENTS[self.gradient].apply(x)

    def extra_repr(self) -> str:
        return f"gradient={self.gradient}, step_mode={self.step_mode}"


def relu(*, step_mode: str = "s", **_) -> nn.Module:
    return ReLU(step_mode=step_mode)


def sign(*, sign_gradient: str = "bireal", step_mode: str = "s", **_) -> nn.Module:
    return Sign(gradient=sign_gradient, step_mode=step_mode)


@hookimpl
def register_neurons(register):
    register("lif", lif)
    register("if", if_node)
    register("relu", relu)
    register("sign", sign)

# Whether a neuron emits spikes (so its network runs T steps in step mode 'm'), and the
# cell keys each reads (they enter the cell's identity; see spikingjelly_lt.methods).
lif.spiking, lif.uses = True, ("model.tau", "model.v_threshold", "model.lif_impl")
if_node.spiking, if_node.uses = True, ("model.v_threshold",)
relu.spiking, relu.uses = False, ()
sign.spiking, sign.uses = False, ("model.sign_gradient",)
