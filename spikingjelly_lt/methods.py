"""The 12 method presets of the benchmark matrix (design 2.4): neuron x weights x search."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import UnknownNameError

__all__ = ["Method", "METHODS", "get_method", "DEFAULT_METHODS"]


@dataclass(frozen=True)
class Method:
    name: str
    neuron: str  # a registered neuron
    weights: str  # 'fp32' | 'binary'
    search: str  # a registered pruner: 'dense' | 'imp' | 'supermask' | third-party
    paper_name: str

    @property
    def sparse(self) -> bool:
        return self.search != "dense"

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
        Method("slt", "lif", "fp32", "supermask", "SNN-ConnS (SLT)"),
        Method("binw-snn", "lif", "binary", "dense", "BinWSNN"),
        Method("binw-slt", "lif", "binary", "supermask", "BinW-SLT"),
    )
}

DEFAULT_METHODS = ("ann", "bnn-lt", "bnn-act-lt", "snn", "snn-imp", "slt", "binw-slt")


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
        neuron, weights, search = parts
        plugins.lookup("neurons", neuron)
        plugins.lookup("pruners", search)
        if weights not in ("fp32", "binary"):
            raise UnknownNameError("weight kind", weights, ("fp32", "binary"))
        return Method(name, neuron, weights, search, name)
    if name in plugins.registry("pruners"):
        return Method(name, "lif", "fp32", name, name)
    valid = list(METHODS) + ["NEURON/WEIGHTS/PRUNER"] + [p for p in plugins.names("pruners") if p not in ("dense", "imp", "supermask")]
    raise UnknownNameError("method", name, valid)
