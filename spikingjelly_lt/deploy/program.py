"""The program a ticket compiles to: its ops (stem, neuron, integer conv / linear, pools, residual
block) as plain data, read by :mod:`.plan`, run by :mod:`.engine`, exported by :mod:`.nir_export`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .pack import pack_ternary, unpack_ternary


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


def int_layers(ops: list[Op]) -> list[IntConv | IntLinear]:
    """The integer conv / linear layers of a program, residual blocks opened."""
    out: list[IntConv | IntLinear] = []
    for op in ops:
        if isinstance(op, Block):
            out += [op.conv1, op.conv2] + ([op.shortcut] if op.shortcut else [])
        elif isinstance(op, (IntConv, IntLinear)):
            out.append(op)
    return out


def net_neurons(ops: list[Op]) -> list[Neuron]:
    """The neurons of a program, residual blocks opened."""
    out: list[Neuron] = []
    for op in ops:
        if isinstance(op, Block):
            out += [op.sn1, op.sn2]
        elif isinstance(op, Neuron):
            out.append(op)
    return out
