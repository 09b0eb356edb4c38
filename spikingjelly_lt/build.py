"""Build a model for (arch, method): the neuron, the architecture and the pruner.

This is the first step of the one-way flow arch + method -> model -> train -> measure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import plugins
from .methods import Method, get_method
from .pruners.common import check_sparsity

__all__ = ["ModelSpec", "build_model", "is_spiking"]


@dataclass
class ModelSpec:
    """Everything that decides a model's structure and initial weights."""

    arch: str = "resnet19"
    method: str = "binw-slt"
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    width: float = 1.0
    timesteps: int = 4
    sparsity: float = 0.5
    tau: float = 2.0
    v_threshold: float = 1.0
    fc_bn: bool = False
    learn_bn: bool = False
    keep_first: bool = False
    keep_last: bool = False
    scope: str = "layer"
    sign_gradient: str = "bireal"
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def is_spiking(method: Method | str) -> bool:
    m = get_method(method) if isinstance(method, str) else method
    return bool(getattr(plugins.lookup("neurons", m.neuron), "spiking", False))


def build_model(spec: ModelSpec | None = None, **overrides) -> nn.Module:
    """Build the network for ``spec`` and apply its method's pruner.

    IMP tickets start dense (the trainer prunes between rounds); supermask tickets
    come back with frozen weights and trainable scores; dense methods train weights.
    Spiking methods get ``timesteps`` T, ANN methods run single-step.
    """
    spec = ModelSpec(**{**(asdict(spec) if spec else {}), **overrides})
    method = get_method(spec.method)
    neuron_factory = plugins.lookup("neurons", method.neuron)
    builder = plugins.lookup("architectures", spec.arch)
    pruner = plugins.lookup("pruners", method.search)
    spiking = bool(getattr(neuron_factory, "spiking", False))
    sparsity = check_sparsity(spec.sparsity) if method.sparse else 0.0
    opts = {"tau": spec.tau, "v_threshold": spec.v_threshold, "sign_gradient": spec.sign_gradient}

    def neuron() -> nn.Module:
        return neuron_factory(**opts)

    torch.manual_seed(spec.seed)
    model = builder(
        neuron=neuron,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        input_size=spec.input_size,
        width=spec.width,
        timesteps=spec.timesteps if spiking else None,
        fc_bn=spec.fc_bn,
    )
    if getattr(pruner, "search", None) == "imp":
        return model
    return pruner(
        model,
        sparsity,
        weights=method.weights,
        scope=spec.scope,
        keep_first=spec.keep_first,
        keep_last=spec.keep_last,
        learn_bn=spec.learn_bn,
        seed=spec.seed,
    )
