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

import logging
import math

import torch
from torch import nn

from ..errors import UsageError
from ..pruners.common import effective_weight
from .cpu import choose_engine, cpu_info
from .engine import (EXACT_UP_TO, GROUPED, INT8_COUNTS, LIF_KERNELS, _Engine, _Reference, exact_algorithms, native_lif,
                     run_program)
from .plan import plan
from .program import IntConv, IntLinear, Neuron, Op, Stem, Ternary, int_layers, net_neurons

__all__ = [
    "STORAGE",
    "FIRST_LAYER",
    "CompiledNet",
    "compile_model",
    "reference_forward",
    "weight_bytes",
]

log = logging.getLogger("spikingjelly_lt")

STORAGE = ("packed", "int8")
FIRST_LAYER = ("fp32", "bf16")


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
        return run_program(self.stem, self.ops, self.timesteps, x, self._engine(record))

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
            run_program(self.stem, self.ops, self.timesteps, x[:2], be)
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
        return int_layers(self.ops)

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
        stem, ops = plan(model, storage)
    finally:
        model.train(was_training)
    timesteps = getattr(model, "timesteps", None)
    if timesteps is None and any(n.kind != "sign" for n in net_neurons(ops)):
        raise UsageError("a model without timesteps must use sign activations (bnn-act-lt)")
    if chosen in GROUPED:
        bound = EXACT_UP_TO[GROUPED[chosen]]
        for layer in int_layers(ops):
            if isinstance(layer, IntConv) and (k := math.prod(layer.weight.shape[2:])) * layer.in_max > bound:
                counts = f" of average-pool counts up to {layer.in_max}" if layer.in_max > 1 else ""
                raise UsageError(f"layer {layer.name}: a {layer.weight.shape[2]}x{layer.weight.shape[3]} kernel sums "
                                 f"{k} products{counts} per channel, beyond {bound} (exact in {chosen}); "
                                 "use --engine fp32")
    if chosen == "int8":  # (a Linear reading larger counts takes the exact fp32 matmul instead)
        for layer in int_layers(ops):
            if isinstance(layer, IntConv) and layer.in_max > INT8_COUNTS:
                raise UsageError(f"layer {layer.name}: its input holds average-pool counts up to {layer.in_max}, "
                                 f"beyond {INT8_COUNTS} (the int8 engine's inputs); use --engine fp32")
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
    with exact_algorithms(net.device.type != "cpu"):  # float64 on a GPU: plain GEMM kernels too
        logits = run_program(net.stem, net.ops, net.timesteps, x.to(net.device), _Reference(record))
    return logits, record
