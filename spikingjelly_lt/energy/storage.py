"""What is stored for each weight layer: the one description behind model size and weight reads.

``layer_storage(module)`` says how a prunable layer's running weight is stored and how
many bits that takes; ``model_storage`` (model size, bits per weight) and the ``-mem``
cost models (weight reads, via ``LayerEnergy.stored_bits``) both use it, so a pruned
fp32 layer gets the same memory credit in both places. Formats (``n`` = weights in the
layer, ``k`` = nonzero ones; docs/energy.md, "Storage"):

- ``dense-fp32``: ``32·n`` (a pruned weight is stored as 0.0).
- ``bitmask-fp32``: a 1-bit keep mask plus the kept values, ``n + 32·k``.
- ``sign``: binary (±alpha) and dense: ``n`` sign bits + one 32-bit alpha.
- ``sign-mask``: binary and pruned (a sign bit cannot encode zero): ``2·n + 32``.
- ``mask-seed``: binary, frozen weights regrown from the seed (supermask tickets shipped
  as seed + mask): ``n`` mask bits (when pruned) + 32 (alpha); no sign bits.

An fp32 layer takes the smaller of ``dense-fp32`` and ``bitmask-fp32``. A pruner (or a
user) may declare another format by setting ``module.sjlt_storage`` to a
``StorageFormat``; it then wins over the inferred one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..pruners.common import effective_weight, prunable_layers

__all__ = ["StorageFormat", "LayerStorage", "FORMATS", "layer_storage", "weight_stats", "model_storage"]


@dataclass(frozen=True)
class StorageFormat:
    """A named storage format: ``bits(numel, nonzeros)`` of one layer's weight."""

    name: str
    bits: Callable[[int, int], int]
    description: str = ""


FORMATS: dict[str, StorageFormat] = {
    f.name: f
    for f in (
        StorageFormat("dense-fp32", lambda n, k: 32 * n, "32-bit float per weight, zeros stored as 0.0"),
        StorageFormat("bitmask-fp32", lambda n, k: n + 32 * k, "1-bit keep mask + 32-bit kept values"),
        StorageFormat("sign", lambda n, k: n + 32, "1 sign bit per weight + 32-bit alpha"),
        StorageFormat("sign-mask", lambda n, k: 2 * n + 32, "1 sign bit + 1 mask bit per weight + 32-bit alpha"),
        StorageFormat("mask-seed", lambda n, k: (n if k < n else 0) + 32,
                      "mask bits (if pruned) + 32-bit alpha; signs regrown from the seed"),
    )
}


@dataclass(frozen=True)
class LayerStorage:
    """How one layer's running weight is stored."""

    format: str
    numel: int
    nonzeros: int
    binary: bool
    bits: int

    @property
    def bits_per_weight(self) -> float:
        return self.bits / self.numel if self.numel else 0.0


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


def layer_storage(
    module: nn.Module, stats: tuple[int, int, bool] | None = None, *, from_seed: bool = False
) -> LayerStorage:
    """The storage of ``module``'s running weight: a declared format, else inferred (module doc)."""
    numel, nz, binary = stats if stats is not None else weight_stats(module)
    declared = getattr(module, "sjlt_storage", None)
    if isinstance(declared, str):
        declared = FORMATS[declared]
    if isinstance(declared, StorageFormat):
        fmt = declared
    elif binary:
        seeded = from_seed and parametrize.is_parametrized(module, "weight")
        fmt = FORMATS["mask-seed" if seeded else ("sign-mask" if nz < numel else "sign")]
    else:
        dense, masked = FORMATS["dense-fp32"], FORMATS["bitmask-fp32"]
        fmt = masked if nz < numel and masked.bits(numel, nz) < dense.bits(numel, nz) else dense
    return LayerStorage(fmt.name, numel, nz, binary, int(fmt.bits(numel, nz)))


def model_storage(model: nn.Module, weights: str | None = None, from_seed: bool = False) -> dict:
    """Bits needed to ship the weights that run, and bits per running weight.

    Each prunable layer is stored as ``layer_storage`` says (the same description the
    ``-mem`` cost models read); every other floating parameter and buffer the forward
    pass uses (BN, biases) is 32 bits. ``weight_bits`` is the value precision averaged
    over the weights that run (the nonzero ones: 1 for a ±alpha weight, 32 for fp32), so
    a binary net with fp32 first/last layers reports its honest mixed figure, not 1;
    ``stored_bits_per_weight`` is the stored weight bits (masks and alphas included) per
    weight of the prunable layers. ``weights`` (the method's weight kind) is accepted for
    compatibility; the format follows the running weight.
    """
    bits = weight_bits = weight_numel = value_bits = running = 0
    counted: set[int] = set()
    formats: dict[str, int] = {}
    for _, module in prunable_layers(model):
        st = layer_storage(module, from_seed=from_seed)
        weight_numel += st.numel
        weight_bits += st.bits
        value_bits += (1 if st.binary else 32) * st.nonzeros
        running += st.nonzeros
        formats[st.format] = formats.get(st.format, 0) + 1
        if parametrize.is_parametrized(module, "weight"):
            counted.update(id(t) for t in module.parametrizations.weight.parameters())
            counted.update(id(t) for t in module.parametrizations.weight.buffers())
            counted.add(id(module.parametrizations.weight.original))
        for name in ("weight", "weight_orig", "weight_mask"):
            t = getattr(module, name, None)
            if isinstance(t, torch.Tensor):
                counted.add(id(t))
    bits += weight_bits
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in counted and t.dtype.is_floating_point:
            bits += 32 * t.numel()
    return {
        "model_bytes": bits // 8,
        "weight_bits": value_bits / running if running else 0.0,
        "weights": weight_numel,
        "stored_bits_per_weight": weight_bits / weight_numel if weight_numel else 0.0,
        "storage_formats": formats,
    }
