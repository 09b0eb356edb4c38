"""Energy: per-layer MAC/AC counts from one eval pass, priced by pluggable cost models.

``count_energy(model, batches, "horowitz45")`` runs one eval pass and returns an
``EnergyReport`` (per image); ``EnergyCounter`` does the same around the trainer's own
eval loop; ``energy_under`` re-prices a report under another cost model; ``saving``
(``savings``) is the one rule for the savings versus the dense ANN and SNN, and
``energy_ratio`` applies it to two reports under one cost model. Counting rules:
docs/energy.md and ``counter``; the report rows and their pricing: ``report``; cost models: ``cost_models``; what is stored per layer:
``storage``; the op_counter cross-check: ``sj_adapter``.
"""

from .cost_models import (
    BUILTIN_MODELS,
    HOROWITZ45,
    HOROWITZ45_INT,
    HOROWITZ45_INT_MEM,
    HOROWITZ45_MEM,
    HOROWITZ45_NEURO,
    CostModel,
)
from .savings import saving, stored_energy_pj

# counting and storage need torch: their names load on first use, so that the cost models and the
# savings (what the report reads) import without it
_LAZY = {
    **dict.fromkeys(("EnergyCounter", "count_energy", "weight_stats"), "counter"),
    **dict.fromkeys(("RULES", "NeuronEnergy", "EnergyReport", "LayerEnergy", "energy_ratio", "energy_under",
                     "resolve_cost_model"), "report"),
    **dict.fromkeys(("FORMATS", "LayerStorage", "StorageFormat", "layer_storage", "model_storage"), "storage"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CostModel",
    "BUILTIN_MODELS",
    "HOROWITZ45",
    "HOROWITZ45_INT",
    "HOROWITZ45_MEM",
    "HOROWITZ45_INT_MEM",
    "HOROWITZ45_NEURO",
    "RULES",
    "EnergyCounter",
    "NeuronEnergy",
    "EnergyReport",
    "LayerEnergy",
    "count_energy",
    "energy_under",
    "energy_ratio",
    "saving",
    "stored_energy_pj",
    "resolve_cost_model",
    "weight_stats",
    "FORMATS",
    "LayerStorage",
    "StorageFormat",
    "layer_storage",
    "model_storage",
]
