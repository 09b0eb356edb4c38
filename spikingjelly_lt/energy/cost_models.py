"""Energy cost models: per-operation energies that turn a layer's op counts into pJ.

All figures are Horowitz (ISSCC 2014), 45 nm: 32-bit float MAC 4.6 pJ (mult 3.7 +
add 0.9), 32-bit float add 0.9 pJ, 32-bit int add 0.1 pJ, 8 KB SRAM 64-bit read
about 10 pJ. A model is a small frozen dataclass; every reported energy names the
model that priced it, and the same counts can be re-priced under another model
(``spikingjelly_lt.energy.energy_under``) without rerunning the network.

Built-in models (registered through ``register_energy_models``):

- ``horowitz45``: every MAC 4.6 pJ, every AC (spike- or ±1-driven add) 0.9 pJ
  (fp32 add), binary or not. No memory term.
- ``horowitz45-int``: as ``horowitz45`` for non-binary layers. In a binary-weight
  layer (effective weight ±alpha with zeros) a spike or ±1 input into a ±alpha
  synapse adds or subtracts a constant; alpha folds into the following BN, so the
  add is a 32-bit int add, 0.1 pJ. A *real-valued* input into a ±alpha synapse
  needs no multiply either (sign flip + fp add, alpha folded into BN): 0.9 pJ.
- ``horowitz45-mem``: ``horowitz45`` plus weight memory reads. Storage per weight:
  32 bits for float layers (a pruned weight is stored as 0.0, no mask needed);
  1 sign bit for binary layers, plus 1 mask bit if the layer is pruned (a 1-bit
  sign cannot encode zero). Read cost: 8 KB SRAM, 10 pJ per 64-bit read, i.e.
  10/64 pJ per bit. Assumption: every stored weight bit is read exactly once per
  image (per inference); a spiking layer runs its T steps back to back (multi-step
  mode, layer by layer), so its weights are not re-read per step. Biases, BN and
  neuron-state traffic are not counted.
- ``horowitz45-int-mem``: ``horowitz45-int`` plus the same memory term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from spikingjelly_lt import hookimpl

__all__ = [
    "CostModel",
    "LayerCounts",
    "FP32_MAC_PJ",
    "FP32_ADD_PJ",
    "INT32_ADD_PJ",
    "INT8_ADD_PJ",
    "INT32_MULT_PJ",
    "SRAM_64BIT_READ_PJ",
    "HOROWITZ45",
    "HOROWITZ45_INT",
    "HOROWITZ45_MEM",
    "HOROWITZ45_INT_MEM",
    "BUILTIN_MODELS",
    "register_energy_models",
]

# Horowitz, ISSCC 2014, 45 nm.
FP32_MAC_PJ = 4.6  # 32-bit float mult 3.7 + add 0.9
FP32_ADD_PJ = 0.9
INT32_ADD_PJ = 0.1
INT8_ADD_PJ = 0.03
INT32_MULT_PJ = 3.1
SRAM_64BIT_READ_PJ = 10.0  # 8 KB SRAM, one 64-bit read


class LayerCounts(Protocol):
    """What a cost model needs from a layer: per-image counts and weight storage."""

    macs: float
    acs: float
    binary: bool
    stored_bits: int


@dataclass(frozen=True)
class CostModel:
    """Per-op energies in pJ; ``binary_*`` apply to binary-weight (±alpha) layers.

    ``binary_mac_pj`` / ``binary_ac_pj`` left as ``None`` mean "same as the float
    layer". ``mem_pj_per_bit`` is charged once per stored weight bit per image.
    """

    name: str
    mac_pj: float = FP32_MAC_PJ
    ac_pj: float = FP32_ADD_PJ
    binary_mac_pj: float | None = None
    binary_ac_pj: float | None = None
    mem_pj_per_bit: float = 0.0
    description: str = ""

    def breakdown_pj(self, layer: LayerCounts) -> dict[str, float]:
        """``{"mac", "ac", "mem"}`` energy of one layer, pJ per image."""
        mac = self.binary_mac_pj if layer.binary and self.binary_mac_pj is not None else self.mac_pj
        ac = self.binary_ac_pj if layer.binary and self.binary_ac_pj is not None else self.ac_pj
        return {
            "mac": layer.macs * mac,
            "ac": layer.acs * ac,
            "mem": layer.stored_bits * self.mem_pj_per_bit,
        }

    def layer_energy_pj(self, layer: LayerCounts) -> float:
        """Total energy of one layer, pJ per image."""
        return sum(self.breakdown_pj(layer).values())


_MEM_PJ_PER_BIT = SRAM_64BIT_READ_PJ / 64

HOROWITZ45 = CostModel(
    name="horowitz45",
    description="Horowitz 45nm: fp32 MAC 4.6 pJ, fp32 add (AC) 0.9 pJ",
)
HOROWITZ45_INT = CostModel(
    name="horowitz45-int",
    binary_ac_pj=INT32_ADD_PJ,
    binary_mac_pj=FP32_ADD_PJ,
    description=(
        "horowitz45; binary-weight layers: spike/±1 into ±alpha = int32 add 0.1 pJ, "
        "real input into ±alpha = fp32 add 0.9 pJ (alpha folds into BN)"
    ),
)
HOROWITZ45_MEM = CostModel(
    name="horowitz45-mem",
    mem_pj_per_bit=_MEM_PJ_PER_BIT,
    description=(
        "horowitz45 + weight reads (SRAM 10 pJ/64 bit, each stored bit once per image; "
        "fp32 32 bit, binary 1 bit + 1 mask bit if pruned)"
    ),
)
HOROWITZ45_INT_MEM = CostModel(
    name="horowitz45-int-mem",
    binary_ac_pj=INT32_ADD_PJ,
    binary_mac_pj=FP32_ADD_PJ,
    mem_pj_per_bit=_MEM_PJ_PER_BIT,
    description="horowitz45-int + the horowitz45-mem weight-read term",
)

BUILTIN_MODELS: tuple[CostModel, ...] = (
    HOROWITZ45,
    HOROWITZ45_INT,
    HOROWITZ45_MEM,
    HOROWITZ45_INT_MEM,
)


@hookimpl
def register_energy_models(register) -> None:
    """Register the built-in Horowitz 45 nm cost models."""
    for model in BUILTIN_MODELS:
        register(model.name, model)
