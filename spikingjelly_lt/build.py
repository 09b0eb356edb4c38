"""Build the model of a resolved cell: the architecture, its neurons, the pruner's parametrizations.

This is the first step of the one-way flow cell -> model -> train -> measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .cell import Cell
from .methods import Resolved, resolve

__all__ = ["DataShape", "build_model", "neuron_options"]


@dataclass(frozen=True)
class DataShape:
    """What the data decides about a model: classes, input channels, input size."""

    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    frames: bool = False  # event frames [N, T, C, H, W] (T from the data), not static images

    @classmethod
    def of(cls, bundle) -> DataShape:
        return cls(bundle.num_classes, bundle.in_channels, bundle.input_size,
                   getattr(bundle, "timesteps", None) is not None)


def neuron_options(cell: Cell) -> dict[str, Any]:
    m = cell.model
    return {"tau": m.tau, "v_threshold": m.v_threshold, "sign_gradient": m.sign_gradient, "impl": m.lif_impl}


def build_model(cell: Resolved | Cell | None = None, shape: DataShape | None = None, **values: Any) -> nn.Module:
    """The network of ``cell`` on data of ``shape``, seeded, with its pruner applied.

    ``cell`` is normally a :class:`~spikingjelly_lt.methods.Resolved` (the trainer's);
    a plain :class:`~spikingjelly_lt.cell.Cell` or keyword fields (``arch="vgg16",
    method="snn", width=0.5, num_classes=10, input_size=32``) are resolved here.
    Spiking methods get ``timesteps`` T; ANN methods run single-step. Supermask
    tickets come back with frozen weights and trainable scores; IMP-style pruners with
    all-ones masks that their rounds prune.
    """
    shape_keys = {k: values.pop(k) for k in ("num_classes", "in_channels", "input_size", "frames") if k in values}
    shape = DataShape(**{**(shape.__dict__ if shape else {}), **shape_keys})
    if not isinstance(cell, Resolved):
        base = cell if isinstance(cell, Cell) else Cell()
        cell = resolve(base.replace(**values) if values else base)
    elif values:
        raise TypeError("pass field changes on the Cell, not beside a Resolved")
    c = cell.cell
    options = neuron_options(c)

    def neuron(**kw: Any) -> nn.Module:
        return cell.neuron(**{**options, **kw})

    # a model by reference (models.user) also learns the neuron constants, whether to replace its
    # own neurons (model.neuron) and whether the data are event frames
    user = {"tau": c.model.tau, "v_threshold": c.model.v_threshold, "replace": "model.neuron" in cell.uses,
            "frames": shape.frames, "spiking": cell.spiking} if getattr(cell.architecture, "user_model", False) else {}
    torch.manual_seed(c.seed)
    model = cell.architecture(
        neuron=neuron,
        num_classes=shape.num_classes,
        in_channels=shape.in_channels,
        input_size=shape.input_size,
        width=c.model.width,
        timesteps=c.model.timesteps if cell.spiking else None,
        fc_bn=c.model.fc_bn,
        **user,
    )
    model = cell.pruner.apply(model, c)
    model.sjlt_built_from = (c, shape)  # what rebuilds it (export_ticket(model, path) needs no spec)
    return model
