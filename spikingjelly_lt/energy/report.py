"""What a count of energy is: the per-layer and per-neuron rows and the report's totals
(:class:`EnergyReport`), and their pricing under a cost model (``energy_under``, ``energy_ratio``).
The counting itself (forward hooks over an eval pass) is :mod:`.counter`. Imports without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .cost_models import CostModel
from .savings import saving

__all__ = ["RULES", "LayerEnergy", "NeuronEnergy", "EnergyReport", "resolve_cost_model", "energy_under",
           "energy_ratio"]

RULES = "sjlt-energy/2"  # docs/energy.md; /1 was the counter before issue 16


@dataclass(frozen=True)
class LayerEnergy:
    """One prunable layer's counts (per image, weight density applied) and energy."""

    name: str
    kind: str  # "conv" | "linear"
    input_shape: tuple[int, ...]  # first batch as seen by the layer ([T, N, ...] in step mode 'm')
    input_kind: str  # spike | static | pooled | graded | real | sign | unused
    op_kind: str  # AC | MAC | "-" (unused)
    macs: float
    acs: float
    weight_density: float
    firing_rate: float | None  # nonzero fraction of spike / graded inputs (pooled: of the pool's input)
    weight_bits: int  # value bits: 1 for binary (±alpha) weights, else 32
    mask_bits: int  # 1 when the storage format has a mask bit per weight, else 0
    weight_numel: int
    binary: bool
    energy_pj: float
    rule: str = ""  # the rule that counted it (docs/energy.md), with its option
    storage: str = ""  # storage format (storage.FORMATS)
    stored_bits: int = 0  # bits of weight storage (read once per image by the ``*-mem`` models)
    binary_synapse: str = ""  # how the pricing model charged a ±alpha synapse


@dataclass(frozen=True)
class NeuronEnergy:
    """One neuron / activation layer: per-image updates, their ops, membrane bits, energy."""

    name: str
    kind: str  # lif | if | plif | node (other SpikingJelly node) | relu | sign
    step_mode: str
    updates: float  # T x neurons per image (stateless: elements per image)
    adds: float  # charge adds per image (updates x adds per update)
    mults: float
    compares: float
    resets: float
    state_bits: int  # membrane bits read and written per update (0: stateless)
    energy_pj: float = 0.0  # neuron ops + membrane traffic under the pricing model


@dataclass(frozen=True)
class EnergyReport:
    """Per-image totals and per-layer rows of one eval pass, priced by ``model``."""

    model: str  # the cost model that priced energy_pj
    layers: tuple[LayerEnergy, ...]
    images: int
    timesteps: int | None
    macs: float
    acs: float
    energy_pj: float
    energy_mac_pj: float
    energy_ac_pj: float
    energy_mem_pj: float
    mean_firing_rate: float | None  # all input spikes / all input slots of spike-fed layers
    firing_rates: dict[str, float] = field(default_factory=dict)  # spike-fed layers only
    rules: str = RULES
    options: dict[str, str] = field(default_factory=dict)  # pooled_fc, binary_synapse
    neurons: tuple[NeuronEnergy, ...] = ()
    neuron_updates: float = 0.0
    energy_neuron_pj: float = 0.0
    energy_membrane_pj: float = 0.0

    def to_dict(self) -> dict:
        """Plain JSON-able dict (layers and neurons as lists of dicts)."""
        return asdict(self)


def resolve_cost_model(cost_model: str | CostModel) -> CostModel:
    """A ``CostModel`` as given, or the one registered under that name."""
    if isinstance(cost_model, CostModel):
        return cost_model
    from ..plugins import lookup

    return lookup("energy_models", cost_model)


def _price(cm: CostModel, rows: list[LayerEnergy], neurons: tuple[NeuronEnergy, ...] = (), **rest) -> EnergyReport:
    parts = [cm.breakdown_pj(r) for r in rows]
    layers = tuple(
        replace(r, energy_pj=sum(p.values()), binary_synapse=cm.binary_synapse if r.binary else "")
        for r, p in zip(rows, parts)
    )
    nparts = [cm.neuron_breakdown_pj(n) for n in neurons]
    nodes = tuple(replace(n, energy_pj=sum(p.values())) for n, p in zip(neurons, nparts))
    options = {**rest.pop("options", {}), "binary_synapse": cm.binary_synapse}
    e_neuron = sum(p["neuron"] for p in nparts)
    e_membrane = sum(p["membrane"] for p in nparts)
    return EnergyReport(
        model=cm.name,
        layers=layers,
        macs=sum(r.macs for r in rows),
        acs=sum(r.acs for r in rows),
        energy_pj=sum(r.energy_pj for r in layers) + e_neuron + e_membrane,
        energy_mac_pj=sum(p["mac"] for p in parts),
        energy_ac_pj=sum(p["ac"] for p in parts),
        energy_mem_pj=sum(p["mem"] for p in parts),
        rules=RULES,
        options=options,
        neurons=nodes,
        neuron_updates=sum(n.updates for n in neurons),
        energy_neuron_pj=e_neuron,
        energy_membrane_pj=e_membrane,
        **rest,
    )


def energy_under(report: EnergyReport, cost_model: str | CostModel) -> EnergyReport:
    """The same counts re-priced under another cost model (no rerun)."""
    cm = resolve_cost_model(cost_model)
    return _price(
        cm,
        list(report.layers),
        report.neurons,
        images=report.images,
        timesteps=report.timesteps,
        mean_firing_rate=report.mean_firing_rate,
        firing_rates=dict(report.firing_rates),
        options={k: v for k, v in report.options.items() if k != "binary_synapse"},
    )


def energy_ratio(
    baseline: EnergyReport, report: EnergyReport, cost_model: str | CostModel | None = None
) -> float | None:
    """How many times less energy ``report`` needs than ``baseline``: :func:`~.savings.saving`
    of the two, both priced under ``cost_model`` (default: ``report``'s model), so reports
    priced under different models are never compared directly.
    """
    if cost_model is None and baseline.model == report.model:
        e_base, e = baseline.energy_pj, report.energy_pj
    else:
        cm = resolve_cost_model(cost_model if cost_model is not None else report.model)
        e_base, e = energy_under(baseline, cm).energy_pj, energy_under(report, cm).energy_pj
    return saving(e_base, e)
