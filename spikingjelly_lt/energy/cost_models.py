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
  sign cannot encode zero); a pruned fp32 layer is a bitmask + kept values (below). Read cost: 8 KB SRAM, 10 pJ per 64-bit read, i.e.
  10/64 pJ per bit. Assumption: every stored weight bit is read exactly once per
  image (per inference); a spiking layer runs its T steps back to back (multi-step
  mode, layer by layer), so its weights are not re-read per step. Biases, BN and
  neuron-state traffic are not counted.
- ``horowitz45-int-mem``: ``horowitz45-int`` plus the same memory term.
- ``horowitz45-neuro``: ``horowitz45`` synaptic ops plus the neurons: every neuron
  update (T x neurons per image) costs its charge adds (0.9 pJ each) and multiplies
  (3.7 pJ each), one fire compare (0.9 pJ, an fp32 subtract) and one reset (0.9 pJ, a
  select or subtract); a LIF update (``V + (X - V)/tau``) is 2 adds + 1 multiply, an IF
  update 1 add. Every update reads and writes the membrane potential at its bit width
  (fp32: 2 x 32 bits at 10/64 pJ per bit = 10 pJ). A stateless ANN activation (ReLU,
  sign) is one compare per element and has no state. Weight reads are not included.

Memory for weights follows ``storage.layer_storage`` (the same description as
``model_storage``): fp32 layers 32 bits per weight or, when pruned, a 1-bit mask + 32
bits per kept weight (whichever is smaller); binary layers 1 sign bit (+ 1 mask bit if
pruned) per weight + a 32-bit alpha.

``binary_synapse`` names how a model prices a spike into a ±alpha synapse (the option
the literature disagrees on): ``fp32-add`` (default, ``horowitz45``) or ``int32-add``
(the ``-int`` models); every report row records it.
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
    "FP32_MULT_PJ",
    "INT32_ADD_PJ",
    "INT8_ADD_PJ",
    "INT32_MULT_PJ",
    "SRAM_64BIT_READ_PJ",
    "HOROWITZ45",
    "HOROWITZ45_INT",
    "HOROWITZ45_MEM",
    "HOROWITZ45_INT_MEM",
    "HOROWITZ45_NEURO",
    "NeuronCounts",
    "BUILTIN_MODELS",
    "register_energy_models",
]

# Horowitz, ISSCC 2014, 45 nm.
FP32_MAC_PJ = 4.6  # 32-bit float mult 3.7 + add 0.9
FP32_ADD_PJ = 0.9
FP32_MULT_PJ = 3.7
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


class NeuronCounts(Protocol):
    """What a cost model needs from a neuron layer: per-image updates and their ops."""

    updates: float
    adds: float
    mults: float
    compares: float
    resets: float
    state_bits: int


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
    neuron_add_pj: float = 0.0
    neuron_mult_pj: float = 0.0
    neuron_cmp_pj: float = 0.0
    state_pj_per_bit: float = 0.0  # each membrane read and each write, per bit
    binary_synapse: str = "fp32-add"
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

    def neuron_breakdown_pj(self, node: NeuronCounts) -> dict[str, float]:
        """``{"neuron", "membrane"}`` energy of one neuron layer, pJ per image.

        neuron = updates x (adds·add + mults·mult + compares·cmp + resets·add) per update;
        membrane = updates x 2 (read + write) x state_bits x pJ per bit.
        """
        ops = node.adds * self.neuron_add_pj + node.mults * self.neuron_mult_pj
        ops += node.compares * self.neuron_cmp_pj + node.resets * self.neuron_add_pj
        return {"neuron": ops, "membrane": node.updates * 2 * node.state_bits * self.state_pj_per_bit}

    @property
    def neuron_aware(self) -> bool:
        return bool(self.neuron_add_pj or self.neuron_mult_pj or self.neuron_cmp_pj or self.state_pj_per_bit)


_MEM_PJ_PER_BIT = SRAM_64BIT_READ_PJ / 64

HOROWITZ45 = CostModel(
    name="horowitz45",
    description="Horowitz 45nm: fp32 MAC 4.6 pJ, fp32 add (AC) 0.9 pJ",
)
HOROWITZ45_INT = CostModel(
    name="horowitz45-int",
    binary_synapse="int32-add",
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
        "fp32 32 bit or mask + kept values if pruned, binary 1 bit + 1 mask bit if pruned)"
    ),
)
HOROWITZ45_INT_MEM = CostModel(
    name="horowitz45-int-mem",
    binary_synapse="int32-add",
    binary_ac_pj=INT32_ADD_PJ,
    binary_mac_pj=FP32_ADD_PJ,
    mem_pj_per_bit=_MEM_PJ_PER_BIT,
    description="horowitz45-int + the horowitz45-mem weight-read term",
)

HOROWITZ45_NEURO = CostModel(
    name="horowitz45-neuro",
    neuron_add_pj=FP32_ADD_PJ,
    neuron_mult_pj=FP32_MULT_PJ,
    neuron_cmp_pj=FP32_ADD_PJ,
    state_pj_per_bit=_MEM_PJ_PER_BIT,
    description=(
        "horowitz45 + neuron updates (charge adds 0.9, mults 3.7, compare 0.9, reset 0.9 pJ) "
        "+ membrane read and write per update (SRAM 10 pJ/64 bit)"
    ),
)

BUILTIN_MODELS: tuple[CostModel, ...] = (
    HOROWITZ45,
    HOROWITZ45_INT,
    HOROWITZ45_MEM,
    HOROWITZ45_INT_MEM,
    HOROWITZ45_NEURO,
)


@hookimpl
def register_energy_models(register) -> None:
    """Register the built-in Horowitz 45 nm cost models."""
    for model in BUILTIN_MODELS:
        register(model.name, model)
