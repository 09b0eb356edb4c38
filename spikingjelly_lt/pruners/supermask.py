"""The ``supermask`` pruner: edge-popup (fp) or biprop / BinW-SLT (binary) tickets.

Weights are re-drawn (Kaiming normal, fan_in, ReLU gain) and frozen; only the scores
(and, with ``learn_bn``, BatchNorm affine parameters) train, under Adam with no weight
decay. Layers kept dense (``keep_first`` / ``keep_last``) train their weights under the
weight optimizer (SGD). With a global threshold, ``ramp_epochs`` ramps the kept
fraction from 0.5 down to the target over the first E epochs (biprop's cubic schedule).
``bake`` removes the parametrizations and leaves plain layers holding the effective weight.

Searches that lower the width a supermask needs (each an option, for binary and fp
supermasks alike, and part of the cell's identity when set):

- ``layer_density="erk"``: per-layer kept fractions by Erdos-Renyi-Kernel (:func:`erk_densities`)
  instead of the same sparsity in every layer; the overall sparsity is the target.
- partial freezing (``freeze_pruned`` / ``freeze_kept``): a seeded random part of every
  layer's weights permanently pruned / kept (:func:`freeze_masks`); the search runs over the rest.
- IteRand (``recipe.iterand_period`` / ``iterand_rate``): every K_per optimizer steps a fraction
  r of the currently pruned frozen weights is re-drawn (:func:`rerandomize`), from a
  generator seeded by (cell seed, step, layer), so a resumed run draws the same values.
- ``recipe.score_optimizer``: Adam (default) or SGD with momentum (edge-popup's).
"""

from __future__ import annotations

from typing import Any

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import hookimpl
from ..errors import UsageError
from ..nn.supermask import GlobalTopK, Supermask
from .base import ParamGroup, Pruner, TrainContext
from .common import check_sparsity, prunable_layers

__all__ = ["SupermaskPruner", "apply_supermask", "bake", "score_parameters", "supermask_layers", "SCOPES",
           "ramp_kept_fraction", "erk_densities", "freeze_masks", "rerandomize", "LAYER_DENSITIES"]

SCOPES = ("layer", "global")
LAYER_DENSITIES = ("uniform", "erk")


def erk_densities(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """Erdos-Renyi-Kernel kept fractions (Evci et al., RigL) of layers with weight ``shapes``.

    Layer ``l`` keeps ``min(1, eps * r_l)`` of its weights, ``r_l = sum(shape_l) / prod(shape_l)``
    (a conv's out, in, kh, kw; a linear layer's out, in), with ``eps`` chosen so that the
    layers together keep ``density`` of all their weights; a layer whose fraction would
    exceed 1 is dense and ``eps`` is solved again over the others.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density {density!r} must be in (0, 1]")
    numels = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    dense: set[int] = set()
    while True:
        budget = density * sum(numels) - sum(numels[i] for i in dense)
        eps = budget / sum(raw[i] * numels[i] for i in range(len(shapes)) if i not in dense)
        over = [i for i in range(len(shapes)) if i not in dense and eps * raw[i] > 1.0]
        if not over:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense.add(max(over, key=lambda i: raw[i]))


def freeze_masks(numel: int, pruned: float, kept: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Partial freezing of one layer: disjoint boolean masks of ``floor(pruned * numel)``
    permanently pruned and ``floor(kept * numel)`` permanently kept entries, drawn from
    ``generator`` (one random permutation: the first part pruned, the next kept)."""
    n_pruned, n_kept = math.floor(pruned * numel), math.floor(kept * numel)
    perm = torch.randperm(numel, generator=generator)
    p = torch.zeros(numel, dtype=torch.bool)
    k = torch.zeros(numel, dtype=torch.bool)
    p[perm[:n_pruned]] = True
    k[perm[n_pruned:n_pruned + n_kept]] = True
    return p, k


def rerandomize(weight: torch.Tensor, mask: torch.Tensor, rate: float, generator: torch.Generator) -> int:
    """IteRand's step on one frozen weight: re-draw ``round(rate * n)`` of its ``n`` pruned
    entries (``~mask``, chosen by ``generator``) from its initial distribution (Kaiming
    normal, fan_in, ReLU gain), in place; returns how many were re-drawn."""
    pruned = (~mask.reshape(-1)).nonzero().reshape(-1).cpu()
    j = round(rate * pruned.numel())
    if j == 0:
        return 0
    chosen = pruned[torch.randperm(pruned.numel(), generator=generator)[:j]]
    std = math.sqrt(2.0 / weight[0].numel())  # kaiming_normal_(mode="fan_in", nonlinearity="relu")
    values = torch.randn(j, generator=generator, dtype=torch.float32) * std
    with torch.no_grad():  # in logical (flat) order, then copied back: any memory format (channels_last)
        flat = weight.detach().reshape(-1).clone()
        flat[chosen.to(weight.device)] = values.to(weight.device, weight.dtype)
        weight.copy_(flat.view(weight.shape))
    return j


def _generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of integers (stateless: the same parts, the same draws)."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part)) % (2 ** 63)
    return torch.Generator().manual_seed(seed)


_FREEZE_SALT, _ITERAND_SALT = 0x5F12, 0x17E3


BIAS_MODES = ("keep", "train", "zero")


def _preset_defaults() -> dict[str, Any]:
    """The binw-slt cell of the default profile (what `sjlt bench` runs): apply_supermask's defaults."""
    from ..profiles import get_profile

    m = get_profile("smoke").base().replace(method="binw-slt")
    return {"sparsity": m.sparsity, "scope": m.model.scope, "keep_first": m.model.keep_first,
            "keep_last": m.model.keep_last, "learn_bn": m.model.learn_bn}


def apply_supermask(model: nn.Module, sparsity: float | None = None, *, binary: bool = True,
                    scope: str | None = None, keep_first: bool | None = None, keep_last: bool | None = None,
                    learn_bn: bool | None = None, bias: str = "keep", neuron_params: str = "keep",
                    layer_density: str = "uniform", freeze_pruned: float = 0.0, freeze_kept: float = 0.0,
                    seed: int = 0) -> nn.Module:
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
        layer_density: ``"uniform"`` (every layer at ``sparsity``) or ``"erk"`` (per-layer
            fractions by :func:`erk_densities`, ``scope="layer"`` only; the overall sparsity
            of the supermask layers is ``sparsity``).
        freeze_pruned / freeze_kept: partial freezing, the fraction of all supermask weights
            permanently pruned (at most ``sparsity``) / kept (at most ``1 - sparsity``); each
            layer gets its share in proportion to its own pruned / kept fraction, drawn by
            :func:`freeze_masks` from ``seed``.
        seed: seeds the partial-freezing draws (layer by layer, in module order).
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
    check_choice("supermask layer density", layer_density, LAYER_DENSITIES)
    _check_search(sparsity, scope, layer_density, freeze_pruned, freeze_kept)
    shared = GlobalTopK(sparsity) if scope == "global" else None
    layers = prunable_layers(model)
    masked = [module for i, (_, module) in enumerate(layers)
              if not ((keep_first and i == 0) or (keep_last and i == len(layers) - 1))]
    layer_sparsity = ([1.0 - d for d in erk_densities([tuple(m.weight.shape) for m in masked], 1.0 - sparsity)]
                      if layer_density == "erk" else [sparsity] * len(masked))
    freezing = freeze_pruned > 0 or freeze_kept > 0
    sparsity_of = dict(zip(map(id, masked), layer_sparsity))
    for i, (_, module) in enumerate(layers):
        if id(module) not in sparsity_of:
            module.weight.requires_grad_(True)
            if module.bias is not None:
                module.bias.requires_grad_(True)
            continue
        s_layer = sparsity_of[id(module)]
        with torch.no_grad():
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None and bias == "zero":
                module.bias.zero_()
        if module.bias is not None:
            module.bias.requires_grad_(bias == "train")
        sm = Supermask(module.weight.shape, s_layer, binary, shared)
        if freezing:  # each layer's share in proportion to its own pruned / kept fraction
            pruned, kept = freeze_masks(module.weight.numel(),
                                        freeze_pruned * s_layer / sparsity if sparsity > 0 else 0.0,
                                        freeze_kept * (1.0 - s_layer) / (1.0 - sparsity),
                                        _generator(_FREEZE_SALT, seed, i))
            sm.freeze(pruned, kept)
        parametrize.register_parametrization(module, "weight", sm)
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


def _check_search(sparsity: float, scope: str, layer_density: str, pruned: float, kept: float) -> None:
    """Search options the target sparsity and scope can hold: one line naming the bad value, else nothing."""
    if layer_density == "erk" and scope != "layer":
        raise UsageError(f"model.layer_density='erk' sets per-layer fractions; it needs model.scope='layer' "
                         f"(given {scope!r})")
    if not 0.0 <= pruned < 1.0 or not 0.0 <= kept < 1.0:
        raise UsageError(f"freeze fractions must be in [0, 1): freeze_pruned={pruned!r}, freeze_kept={kept!r}")
    if pruned > sparsity + 1e-12:
        raise UsageError(f"recipe.freeze_pruned={pruned!r} prunes more than the target sparsity {sparsity!r}; "
                         f"valid: 0 <= freeze_pruned <= sparsity")
    if kept > 1.0 - sparsity + 1e-12:
        raise UsageError(f"recipe.freeze_kept={kept!r} keeps more than the kept fraction {1.0 - sparsity:g}; "
                         f"valid: 0 <= freeze_kept <= 1 - sparsity")
    if scope == "global" and pruned > 0.5:
        raise UsageError(f"recipe.freeze_pruned={pruned!r}: with model.scope='global' the kept fraction starts "
                         f"at 0.5 (ramp); valid: freeze_pruned <= 0.5")


def ramp_kept_fraction(target_kept: float, t: float) -> float:
    """biprop's cubic ramp: kept fraction at progress ``t`` in [0, 1], 0.5 at t=0, target at t>=1."""
    t = min(max(float(t), 0.0), 1.0)
    return target_kept + (0.5 - target_kept) * (1.0 - t) ** 3


class SupermaskPruner(Pruner):
    """Supermask search in one training run (edge-popup, biprop, BinW-SLT)."""

    uses = ("sparsity", "recipe.score_lr", "recipe.ramp_epochs", "model.keep_first", "model.keep_last",
            "model.learn_bn", "model.scope", "recipe.lr", "recipe.weight_decay", "model.layer_density",
            "recipe.score_optimizer", "recipe.iterand_period", "recipe.iterand_rate", "recipe.freeze_pruned",
            "recipe.freeze_kept")

    def check(self, cell) -> None:
        """Refuse, before any work, search options the cell's sparsity and scope cannot hold."""
        _check_search(cell.sparsity, cell.model.scope, cell.model.layer_density, cell.recipe.freeze_pruned,
                      cell.recipe.freeze_kept)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        m, r = cell.model, cell.recipe
        self.sparsity, self.scope = cell.sparsity, m.scope
        self.seed, self.iterand_period, self.iterand_rate = cell.seed, r.iterand_period, r.iterand_rate
        self.layer_density, self.freeze = m.layer_density, (r.freeze_pruned, r.freeze_kept)
        self.ramp_epochs = cell.recipe.ramp_epochs if m.scope == "global" and cell.sparsity >= 0.5 else 0
        # the package's own architectures have always zeroed supermask biases (their stored cells
        # depend on it); a model by reference keeps its biases' values, frozen
        from ..models.user import UserNet

        self.bias = "keep" if isinstance(model, UserNet) else "zero"
        apply_supermask(model, cell.sparsity, binary=self.weights == "binary", scope=m.scope,
                        keep_first=m.keep_first, keep_last=m.keep_last, learn_bn=m.learn_bn, bias=self.bias,
                        layer_density=m.layer_density, freeze_pruned=r.freeze_pruned, freeze_kept=r.freeze_kept,
                        seed=cell.seed)
        self.densities = {name: 1.0 - sm.sparsity for name, sm in supermask_layers(model)}
        return model

    def param_groups(self, model: nn.Module, recipe) -> list[ParamGroup]:
        scores = score_parameters(model)
        ids = {id(p) for p in scores}
        dense_ids: set[int] = set()
        for _, module in prunable_layers(model):
            if not parametrize.is_parametrized(module, "weight"):
                dense_ids.update(id(p) for p in module.parameters(recurse=False) if p.requires_grad)
        dense = [p for p in model.parameters() if id(p) in dense_ids]
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids and id(p) not in dense_ids]
        groups = [ParamGroup(scores + rest, recipe.score_optimizer, recipe.score_lr, 0.0, "scores")]
        if dense:
            groups.append(ParamGroup(dense, "sgd", recipe.lr, recipe.weight_decay, "kept-dense layers"))
        return groups

    def on_train_start(self, model: nn.Module, ctx: TrainContext) -> None:
        self.on_step(model, ctx)

    def on_step(self, model: nn.Module, ctx: TrainContext) -> None:
        if self.iterand_period and ctx.step > 0 and ctx.step % self.iterand_period == 0:
            self.rerandomize(model, ctx)
        if not self.ramp_epochs:
            return
        progress = ctx.step / (self.ramp_epochs * ctx.steps_per_epoch)
        kept = ramp_kept_fraction(1.0 - self.sparsity, progress)
        for _, sm in supermask_layers(model):
            sm.shared.sparsity = 1.0 - kept

    def rerandomize(self, model: nn.Module, ctx: TrainContext) -> int:
        """IteRand: re-draw a fraction of every layer's pruned frozen weights (seeded by the cell's
        seed, the round, the step and the layer); returns how many entries were re-drawn."""
        drawn = 0
        for i, (name, sm) in enumerate(supermask_layers(model)):
            weight = model.get_submodule(name).parametrizations.weight.original
            drawn += rerandomize(weight, sm.mask(), self.iterand_rate,
                                 _generator(_ITERAND_SALT, self.seed, ctx.round, ctx.step, i))
        self.state["iterand_draws"] = self.state.get("iterand_draws", 0) + drawn
        return drawn

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "scope": self.scope, "ramp_epochs": self.ramp_epochs,
               "bias": getattr(self, "bias", "zero")}
        if getattr(self, "layer_density", "uniform") != "uniform":
            out["layer_density"] = self.layer_density
            out["densities"] = {k: round(v, 6) for k, v in self.densities.items()}
        if any(getattr(self, "freeze", (0.0, 0.0))):
            out["freeze_pruned"], out["freeze_kept"] = self.freeze
        if getattr(self, "iterand_period", 0):
            out["iterand"] = {"period": self.iterand_period, "rate": self.iterand_rate,
                              "draws": self.state.get("iterand_draws", 0)}
        return out


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
