"""The ``supermask`` pruner: edge-popup (fp) or biprop / BinW-SLT (binary) tickets.

Weights are re-drawn (Kaiming normal, fan_in, ReLU gain) and frozen; only the scores
(and, with ``learn_bn``, BatchNorm affine parameters) train, under Adam with no weight
decay. Layers kept dense (``keep_first`` / ``keep_last``) train their weights under the
weight optimizer (SGD). With a global threshold, ``ramp_epochs`` ramps the kept
fraction from 0.5 down to the target over the first E epochs (biprop's cubic schedule).
``bake`` removes the parametrizations and leaves plain layers holding the effective weight.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import hookimpl
from ..nn.supermask import GlobalTopK, Supermask
from .base import ParamGroup, Pruner, TrainContext
from .common import check_sparsity, prunable_layers

__all__ = ["SupermaskPruner", "apply_supermask", "bake", "score_parameters", "supermask_layers", "SCOPES",
           "ramp_kept_fraction"]

SCOPES = ("layer", "global")


BIAS_MODES = ("keep", "train", "zero")


def _preset_defaults() -> dict[str, Any]:
    """The binw-slt cell of the default profile (what `sjlt bench` runs): apply_supermask's defaults."""
    from ..profiles import get_profile

    m = get_profile("smoke").base().replace(method="binw-slt")
    return {"sparsity": m.sparsity, "scope": m.model.scope, "keep_first": m.model.keep_first,
            "keep_last": m.model.keep_last, "learn_bn": m.model.learn_bn}


def apply_supermask(model: nn.Module, sparsity: float | None = None, *, binary: bool = True,
                    scope: str | None = None, keep_first: bool | None = None, keep_last: bool | None = None,
                    learn_bn: bool | None = None, bias: str = "keep", neuron_params: str = "keep") -> nn.Module:
    """Turn every prunable layer (``Conv2d`` / ``Linear``) into a supermask layer; returns ``model``.

    It changes exactly this, and nothing else:

    - each supermask layer's weight is re-drawn (Kaiming normal, fan_in, ReLU gain), frozen,
      and parametrized by trainable scores (:class:`~spikingjelly_lt.nn.supermask.Supermask`);
    - its bias, by ``bias``: ``"keep"`` (default: its value, frozen), ``"train"`` (its value,
      trained with the scores) or ``"zero"`` (set to 0 and frozen, as the package's own
      ResNet-19 / VGG-16 cells do);
    - BatchNorm affine parameters train or are frozen by ``learn_bn``;
    - layers kept dense (``keep_first`` / ``keep_last``) have weight and bias trainable.

    Every other parameter keeps its value and its ``requires_grad``: neuron parameters (a
    PLIF's learnable ``w``, thresholds) train as before unless ``neuron_params="freeze"``.

    Defaults (``None``) are those of the ``binw-slt`` preset as ``sjlt bench`` runs it (the
    ``smoke`` profile's cell): sparsity 0.5, layer-wise top-k, no layer kept dense, BN
    affine trained.

    Args:
        sparsity: fraction of weights removed per layer (or overall, ``scope='global'``).
        binary: ``alpha * M * sign(W)`` (biprop / BinW-SLT), else ``W * M`` (edge-popup).
        scope: ``"layer"`` top-k per layer or ``"global"`` (one threshold).
        keep_first / keep_last: leave the first / last layer dense and trainable.
        learn_bn: let BatchNorm affine parameters train (else they stay frozen at their values).
        bias: what happens to supermask layers' biases (above).
        neuron_params: ``"keep"`` or ``"freeze"`` the parameters of SpikingJelly neurons.
    """
    from ..errors import check_choice

    preset = _preset_defaults()
    sparsity = preset["sparsity"] if sparsity is None else sparsity
    scope = preset["scope"] if scope is None else scope
    keep_first = preset["keep_first"] if keep_first is None else keep_first
    keep_last = preset["keep_last"] if keep_last is None else keep_last
    learn_bn = preset["learn_bn"] if learn_bn is None else learn_bn
    check_sparsity(sparsity)
    check_choice("supermask scope", scope, SCOPES)
    check_choice("supermask bias mode", bias, BIAS_MODES)
    check_choice("neuron parameter mode", neuron_params, ("keep", "freeze"))
    shared = GlobalTopK(sparsity) if scope == "global" else None
    layers = prunable_layers(model)
    for i, (_, module) in enumerate(layers):
        if (keep_first and i == 0) or (keep_last and i == len(layers) - 1):
            module.weight.requires_grad_(True)
            if module.bias is not None:
                module.bias.requires_grad_(True)
            continue
        with torch.no_grad():
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None and bias == "zero":
                module.bias.zero_()
        if module.bias is not None:
            module.bias.requires_grad_(bias == "train")
        parametrize.register_parametrization(module, "weight", Supermask(module.weight.shape, sparsity, binary, shared))
        module.parametrizations.weight.original.requires_grad_(False)
    if shared is not None:
        shared.attach(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.requires_grad_(learn_bn)
            m.bias.requires_grad_(learn_bn)
    if neuron_params == "freeze":
        from ..energy.counter import is_neuron_node

        for m in model.modules():
            if is_neuron_node(m):
                for p in m.parameters():
                    p.requires_grad_(False)
    return model


def ramp_kept_fraction(target_kept: float, t: float) -> float:
    """biprop's cubic ramp: kept fraction at progress ``t`` in [0, 1], 0.5 at t=0, target at t>=1."""
    t = min(max(float(t), 0.0), 1.0)
    return target_kept + (0.5 - target_kept) * (1.0 - t) ** 3


class SupermaskPruner(Pruner):
    """Supermask search in one training run (edge-popup, biprop, BinW-SLT)."""

    uses = ("sparsity", "recipe.score_lr", "recipe.ramp_epochs", "model.keep_first", "model.keep_last",
            "model.learn_bn", "model.scope", "recipe.lr", "recipe.weight_decay")

    def apply(self, model: nn.Module, cell) -> nn.Module:
        m = cell.model
        self.sparsity, self.scope = cell.sparsity, m.scope
        self.ramp_epochs = cell.recipe.ramp_epochs if m.scope == "global" and cell.sparsity >= 0.5 else 0
        # the package's own architectures have always zeroed supermask biases (their stored cells
        # depend on it); a model by reference keeps its biases' values, frozen
        from ..models.user import UserNet

        self.bias = "keep" if isinstance(model, UserNet) else "zero"
        return apply_supermask(model, cell.sparsity, binary=self.weights == "binary", scope=m.scope,
                               keep_first=m.keep_first, keep_last=m.keep_last, learn_bn=m.learn_bn, bias=self.bias)

    def param_groups(self, model: nn.Module, recipe) -> list[ParamGroup]:
        scores = score_parameters(model)
        ids = {id(p) for p in scores}
        dense_ids: set[int] = set()
        for _, module in prunable_layers(model):
            if not parametrize.is_parametrized(module, "weight"):
                dense_ids.update(id(p) for p in module.parameters(recurse=False) if p.requires_grad)
        dense = [p for p in model.parameters() if id(p) in dense_ids]
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids and id(p) not in dense_ids]
        groups = [ParamGroup(scores + rest, "adam", recipe.score_lr, 0.0, "scores")]
        if dense:
            groups.append(ParamGroup(dense, "sgd", recipe.lr, recipe.weight_decay, "kept-dense layers"))
        return groups

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.on_step(model, ctx)

    def on_step(self, model: nn.Module, ctx: TrainContext) -> None:
        if not self.ramp_epochs:
            return
        progress = ctx.step / (self.ramp_epochs * ctx.steps_per_epoch)
        kept = ramp_kept_fraction(1.0 - self.sparsity, progress)
        for _, sm in supermask_layers(model):
            sm.shared.sparsity = 1.0 - kept

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scope": self.scope, "ramp_epochs": self.ramp_epochs,
                "bias": getattr(self, "bias", "zero")}


def supermask_layers(model: nn.Module) -> list[tuple[str, Supermask]]:
    """(layer name, its Supermask parametrization) for every supermask layer."""
    out = []
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, Supermask):
                    out.append((name, p))
    return out


def score_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p.scores for _, p in supermask_layers(model)]


def bake(model: nn.Module) -> nn.Module:
    """Remove every parametrization, keeping the effective weight as a plain tensor."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


@hookimpl
def register_pruners(register):
    register("supermask", SupermaskPruner)
