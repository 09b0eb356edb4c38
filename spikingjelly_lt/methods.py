"""Method presets (docs/design.md §2.4) and the one place a cell's names become objects.

A method is a preset of three orthogonal plugin choices: neuron x weight kind x pruner.
:func:`resolve` turns a :class:`~spikingjelly_lt.cell.Cell` into a :class:`Resolved`
once, at the top of the flow: the neuron factory, the architecture builder, a fresh
pruner object, whether the net spikes, and the cell's identity (the fields its
components use, and their hash). Nothing below asks for a method by name again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .cell import Cell, cell_hash, knobs
from .errors import UnknownNameError, UsageError

__all__ = ["Method", "METHODS", "DEFAULT_METHODS", "get_method", "method_rank", "resolve", "Resolved", "BASELINES",
           "component_uses"]


@dataclass(frozen=True)
class Method:
    name: str
    neuron: str  # a registered neuron
    weights: str  # 'fp32' | 'binary'
    pruner: str  # a registered pruner
    paper_name: str

    def to_dict(self) -> dict:
        return asdict(self)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ann", "relu", "fp32", "dense", "ANN"),
        Method("ann-imp", "relu", "fp32", "imp", "LT"),
        Method("ann-ep", "relu", "fp32", "supermask", "edge-popup (ANN-ConnS)"),
        Method("bnn", "relu", "binary", "dense", "BNN"),
        Method("bnn-lt", "relu", "binary", "supermask", "MPT-1/32 (binary LT)"),
        Method("bnn-act", "sign", "binary", "dense", "BinActBNN"),
        Method("bnn-act-lt", "sign", "binary", "supermask", "MPT-1/1"),
        Method("snn", "lif", "fp32", "dense", "SNN"),
        Method("snn-imp", "lif", "fp32", "imp", "SNN LT (Kim et al.)"),
        Method("snn-imp-et", "lif", "fp32", "imp-et", "SNN early-time LT (Kim et al.)"),
        Method("snn-eb", "lif", "fp32", "eb", "SNN early-bird LT"),
        Method("snn-gmp", "lif", "fp32", "gmp", "SNN gradual pruning (Zhu & Gupta)"),
        Method("slt", "lif", "fp32", "supermask", "SNN-ConnS (SLT)"),
        Method("binw-snn", "lif", "binary", "dense", "BinWSNN"),
        Method("binw-slt", "lif", "binary", "supermask", "BinW-SLT"),
    )
}

# The dense SNN first: the other cells' x SNN saving needs its energy.
DEFAULT_METHODS = ("snn", "ann", "bnn-lt", "bnn-act-lt", "snn-imp", "slt", "binw-slt")

# The dense baselines every cell is compared with: cell.replace(method=...) of each.
BASELINES = ("snn", "ann")

# Cell keys a component reads when it does not say (conservative: they all count).
_DEFAULT_USES = {
    "neurons": ("model.tau", "model.v_threshold", "model.lif_impl", "model.sign_gradient"),
    "architectures": ("model.fc_bn",),
}


def method_rank(name: Any) -> tuple[int, str]:
    """Sort key of a method name: the order of :data:`METHODS` (tables, plots, pairs), any other
    name after them, alphabetically."""
    m = str(name)
    return (list(METHODS).index(m) if m in METHODS else len(METHODS), m)


def get_method(name: str) -> Method:
    """Resolve a method name.

    A preset name (``binw-slt``), or ``NEURON/WEIGHTS/PRUNER`` for any registered
    combination (``lif/fp32/random``), or a bare registered pruner name (spiking LIF,
    fp32 weights). An unknown name lists the valid ones.
    """
    if name in METHODS:
        return METHODS[name]
    from . import plugins

    parts = name.split("/")
    if len(parts) == 3:
        neuron, weights, pruner = parts
        plugins.lookup("neurons", neuron)
        plugins.lookup("pruners", pruner)
        if weights not in ("fp32", "binary"):
            raise UnknownNameError("weight kind", weights, ("fp32", "binary"))
        return Method(name, neuron, weights, pruner, name)
    if name in plugins.registry("pruners"):
        return Method(name, "lif", "fp32", name, name)
    builtin = {m.pruner for m in METHODS.values()}
    valid = list(METHODS) + ["NEURON/WEIGHTS/PRUNER"] + [p for p in plugins.names("pruners") if p not in builtin]
    raise UnknownNameError("method", name, valid)


def component_uses(kind: str, obj: Any) -> tuple[str, ...]:
    """The cell keys a neuron / architecture / pruner declares it reads (``uses``)."""
    uses = getattr(obj, "uses", None)
    return tuple(_DEFAULT_USES.get(kind, ()) if uses is None else uses)


@dataclass(frozen=True)
class Resolved:
    """A cell with its names resolved: what builds, trains and identifies it."""

    cell: Cell
    method: Method
    neuron: Any  # factory(**options) -> nn.Module
    spiking: bool
    architecture: Any  # builder(*, neuron, num_classes, in_channels, input_size, width, ...)
    pruner: Any  # a fresh Pruner for this cell
    uses: frozenset[str]
    plugins: dict[str, dict[str, str]]  # kind -> {name, plugin, distribution, version}
    #: what a model or data set named by reference adds to the identity:
    #: ``{"model": {"source": {reference, sha256}}, "data": {"fingerprint": ...}}`` (empty for registered names)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        """The cell's identity: every field that counts for its method, nested (a field added after
        results were stored, ``keyed_when_set``, only when set away from its default); a model by reference
        adds its reference and file sha256, a data set by reference its content fingerprint."""
        out: dict[str, Any] = {}
        for key, k in knobs().items():
            if k.conditional and key not in self.uses:
                continue
            value = self.cell.get(key)
            if k.keyed_when_set and value == k.default:
                continue
            (out.setdefault(k.section, {}) if k.section else out)[k.name] = value
        for section, extra in self.sources.items():
            out.setdefault(section, {}).update(extra)
        return out

    @property
    def hash(self) -> str:
        return cell_hash(self.key())

    def baseline(self, method: str) -> Resolved:
        """The dense baseline of this cell: ``cell.replace(method=method)``, resolved."""
        return resolve(self.cell.replace(method=method))

    def baseline_hashes(self) -> dict[str, str]:
        return {m: self.baseline(m).hash for m in BASELINES if m != self.method.name}

    def describe(self) -> dict[str, Any]:
        """The fully resolved cell as a result row stores it."""
        return {
            "cell": self.cell.to_dict(),
            "key": self.key(),
            "hash": self.hash,
            "method": self.method.to_dict(),
            "spiking": self.spiking,
            "uses": sorted(self.uses),
            "plugins": self.plugins,
            "pruner_class": f"{type(self.pruner).__module__}.{type(self.pruner).__qualname__}",
            "baselines": self.baseline_hashes(),
        }


def resolve(cell: Cell) -> Resolved:
    """Look every name of ``cell`` up once and check what depends on the combination."""
    from . import plugins
    from .pruners.base import make_pruner

    method = get_method(cell.method)
    neuron = plugins.lookup("neurons", method.neuron)
    arch = plugins.lookup("architectures", cell.model.arch)
    data = plugins.lookup("datasets", cell.data.dataset)
    plugins.lookup("energy_models", cell.energy_model)
    replaced = bool(cell.model.neuron) and bool(getattr(neuron, "spiking", False))
    if replaced:  # model.neuron: a spiking method's neurons replaced by another registered one
        neuron = plugins.lookup("neurons", cell.model.neuron)
        if not getattr(neuron, "spiking", False):
            raise UsageError(f"model.neuron={cell.model.neuron!r} is not a spiking neuron; the ANN activations "
                             "come with the ANN methods (ann, bnn-lt, ...)")
    try:
        pruner = make_pruner(plugins.lookup("pruners", method.pruner), method.weights)
    except UnknownNameError as exc:  # a weight kind the pruner does not support
        raise UsageError(f"method {method.name!r}: {exc}") from None
    if hasattr(pruner, "check"):  # options the pruner cannot run with: refused here, before any work
        pruner.check(cell)
    spiking = bool(getattr(neuron, "spiking", False))
    own_neurons = getattr(arch, "user_model", False) and not replaced and "neuron" not in arch.named.values()
    uses = set() if own_neurons else set(component_uses("neurons", neuron))  # a user model's own neurons
    uses |= set(component_uses("architectures", arch))
    uses |= set(component_uses("pruners", pruner))
    if spiking:
        uses.add("model.timesteps")
    if getattr(pruner, "sparse", True):
        uses.add("sparsity")
    else:
        uses.discard("sparsity")
    if replaced:
        uses.add("model.neuron")
    if cell.data.resize:
        uses.add("data.resize")
    frames_t = getattr(data, "timesteps", None)
    if spiking and frames_t and cell.model.timesteps != frames_t:
        raise UsageError(f"dataset {cell.data.dataset!r} holds event frames with T={frames_t} but "
                         f"model.timesteps={cell.model.timesteps}; leave model.timesteps unset (T comes from the "
                         f"data) or set it to {frames_t}")
    sources: dict[str, dict[str, Any]] = {}
    if getattr(arch, "user_model", False):
        sources["model"] = {"source": {"reference": arch.source.reference, "sha256": arch.source.sha256}}
    if getattr(data, "fingerprint", None) and plugins.reference("datasets", cell.data.dataset) is not None:
        sources["data"] = {"fingerprint": data.fingerprint}
    unknown = uses - set(knobs())
    if unknown:
        raise UsageError(f"method {method.name!r} declares unknown cell keys {sorted(unknown)}")
    components = {"neuron": plugins.entry_info("neurons", cell.model.neuron if replaced else method.neuron),
                  "pruner": plugins.entry_info("pruners", method.pruner),
                  "architecture": plugins.entry_info("architectures", cell.model.arch),
                  "dataset": plugins.entry_info("datasets", cell.data.dataset),
                  "energy_model": plugins.entry_info("energy_models", cell.energy_model)}
    # a third-party component's distribution and version (a --plugin file's sha256) join the identity:
    # a new plugin release re-runs its cells; the package's own components add nothing (stored hashes hold)
    foreign = {kind: f"{info['distribution']} {info['version']}" for kind, info in components.items()
               if info.get("plugin") not in (*plugins.DEFAULT_PLUGINS, "reference")}
    if foreign:
        sources["plugins"] = foreign
    return Resolved(cell, method, neuron, spiking, arch, pruner, frozenset(uses),
                    {k: v for k, v in components.items() if k != "energy_model"}, sources)

