"""Read a model's structure into the program of :mod:`.program`: the package's Network
(encoder + body) or any chain of supported layers, BatchNorm folded into each layer's affine
map, average pools placed on integer sums; anything without an exact integer form is refused
in one line naming the layer and what compiles."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from ..pruners.common import effective_weight
from .program import (SUPPORTED, Affine, AvgPool, Block, Flatten, GlobalPool, IntConv, IntLinear, MaxPool, Neuron,
                      Op, Stem, Ternary)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _ternary(name: str, module: nn.Module) -> tuple[torch.Tensor, float]:
    """``(q, alpha)`` of a layer whose running weight is exactly {-alpha, 0, +alpha}."""
    w = effective_weight(module).detach().to("cpu", torch.float64)
    nz = w[w != 0].abs()
    alpha = float(nz.max()) if nz.numel() else 0.0
    if nz.numel() and not bool((nz == alpha).all()):
        raise UsageError(
            f"layer {name} is not binary (its weights are not exactly {{-alpha, 0, +alpha}}); "
            "the integer engine needs a binary-weight ticket (binw-slt, bnn-act-lt)")
    return torch.sign(w).to(torch.int8), alpha


def _bn_fold(bn: nn.Module | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, b) with ``BN(x) = s * x + b`` in eval mode, float64."""
    if bn is None:
        return torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    if bn.running_mean is None or bn.running_var is None:
        raise UsageError("a BatchNorm without running statistics cannot be folded")
    mean = bn.running_mean.detach().double().cpu()
    inv = 1.0 / torch.sqrt(bn.running_var.detach().double().cpu() + float(bn.eps))
    gamma = bn.weight.detach().double().cpu() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double().cpu() if bn.bias is not None else torch.zeros_like(mean)
    s = gamma * inv
    return s, beta - mean * s


def _affine(alpha: float, layer_bias: torch.Tensor | None, bn: nn.Module | None, channels: int) -> Affine:
    s, b = _bn_fold(bn, channels)
    lb = layer_bias.detach().double().cpu() if layer_bias is not None else torch.zeros(channels, dtype=torch.float64)
    return Affine(s * alpha, s * lb + b)


def _neuron(name: str, module: nn.Module) -> Neuron | None:
    from .._sj import neuron as sj_neuron
    from ..neuron.fast_lif import FastLIFNode
    from ..neuron.neurons import Sign

    if isinstance(module, (FastLIFNode, sj_neuron.LIFNode)):
        return Neuron(name, "lif", float(module.tau), bool(module.decay_input), float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, sj_neuron.ParametricLIFNode):  # the learned tau, frozen as a constant
        tau = 1.0 / float(torch.sigmoid(module.w.detach().double()))
        return Neuron(name, "lif", tau, bool(module.decay_input), float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, sj_neuron.IFNode):
        return Neuron(name, "if", 1.0, True, float(module.v_threshold),
                      None if module.v_reset is None else float(module.v_reset))
    if isinstance(module, Sign):
        return Neuron(name, "sign")
    return None


def _bn_after(mods: list[tuple[str, nn.Module]], i: int, kinds: tuple[type, ...]) -> nn.Module | None:
    if i + 1 < len(mods) and isinstance(mods[i + 1][1], kinds):
        return mods[i + 1][1]
    return None


def _conv(name: str, conv: nn.Conv2d, bn: nn.Module | None, storage: str) -> IntConv:
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or conv.padding_mode != "zeros":
        raise UsageError(f"layer {name}: only plain convolutions (groups 1, dilation 1, zero padding) compile")
    if isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: string padding {conv.padding!r} does not compile")
    q, alpha = _ternary(name, conv)
    return IntConv(name, Ternary.of(q, alpha, storage), _pair(conv.stride), _pair(conv.padding),
                   _affine(alpha, conv.bias, bn, conv.out_channels))


_AVGPOOL_OK = ("AvgPool2d(kernel, stride, padding) with ceil_mode=False, no divisor_override, "
               "count_include_pad=True (False only without padding)")


def _avgpool(name: str, m: nn.AvgPool2d) -> AvgPool:
    """The sum-pool op of an ``nn.AvgPool2d`` whose every window divides by ``kh kw`` (torch's
    default); options that change the divisor per window are refused in one line."""
    k = _pair(m.kernel_size)
    s = _pair(m.stride) if m.stride not in (None, (), []) else k
    p = _pair(m.padding)
    why = ("ceil_mode=True" if m.ceil_mode else
           f"divisor_override={m.divisor_override}" if m.divisor_override is not None else
           "count_include_pad=False with padding > 0" if not m.count_include_pad and p != (0, 0) else None)
    if why:
        raise UsageError(f"layer {name} (AvgPool2d): {why} does not compile; supported: {_AVGPOOL_OK}")
    return AvgPool(name, k, s, p)


def _is_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("conv1", "bn1", "sn1", "conv2", "bn2", "shortcut", "sn2"))


def plan(model: nn.Module, storage: str) -> tuple[Stem, list[Op]]:
    """The program of ``model``: the package's Network (encoder + body), or any chain of supported layers
    (a model by reference, a plain ``nn.Sequential``), read in definition order."""
    if not all(isinstance(getattr(model, attr, None), nn.Module) for attr in ("encoder", "body")):
        return _plan_chain(model, storage)
    enc = list(model.encoder.named_children())
    if len(enc) != 2 or not isinstance(enc[0][1], nn.Conv2d) or not isinstance(enc[1][1], nn.BatchNorm2d):
        raise UsageError("the model's encoder is not conv + BatchNorm2d")
    conv, bn = enc[0][1], enc[1][1]
    name = f"encoder.{enc[0][0]}"
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: only plain convolutions compile")
    w = effective_weight(conv).detach().to("cpu", torch.float32)
    try:
        q, alpha = _ternary(name, conv)
        weight: Ternary | torch.Tensor = Ternary.of(q, alpha, storage)
        aff = _affine(alpha, conv.bias, bn, conv.out_channels)
    except UsageError:  # a dense first layer (keep_first): it sees the real image anyway
        weight = w.contiguous()
        aff = _affine(1.0, conv.bias, bn, conv.out_channels)
    stem = Stem(name, weight, _pair(conv.stride), _pair(conv.padding), aff)
    return stem, _ops([(f"body.{n}", m) for n, m in model.body.named_children()], storage, stem)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in definition order (nested containers opened; ResNet-19 blocks kept whole)."""
    from ..energy.counter import is_neuron_node

    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, m: nn.Module) -> None:
        for n, c in m.named_children():
            leaf = not any(True for _ in c.children())
            if leaf or _is_block(c) or is_neuron_node(c) or isinstance(c, (nn.Conv2d, nn.Linear)):
                out.append((f"{prefix}{n}", c))
            else:
                walk(f"{prefix}{n}.", c)

    walk("", model)
    return out


def _plan_chain(model: nn.Module, storage: str) -> tuple[Stem, list[Op]]:
    """Any model whose layers run in definition order (a chain, like ``nn.Sequential``)."""
    mods = [(n, m) for n, m in _leaves(model) if not isinstance(m, nn.Dropout) and type(m).__name__ != "Dropout"]
    if not mods or not isinstance(mods[0][1], nn.Conv2d):
        first = f"{mods[0][0]} ({type(mods[0][1]).__name__})" if mods else "nothing"
        raise UsageError(f"the first layer must be a Conv2d on the image, not {first}; supported: {', '.join(SUPPORTED)}")
    name, conv = mods[0]
    bn = _bn_after(mods, 0, (nn.BatchNorm2d,))
    if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UsageError(f"layer {name}: only plain convolutions compile")
    try:
        q, alpha = _ternary(name, conv)
        weight: Ternary | torch.Tensor = Ternary.of(q, alpha, storage)
        aff = _affine(alpha, conv.bias, bn, conv.out_channels)
    except UsageError:  # a dense first layer: it sees the real image anyway
        weight = effective_weight(conv).detach().to("cpu", torch.float32).contiguous()
        aff = _affine(1.0, conv.bias, bn, conv.out_channels)
    stem = Stem(name, weight, _pair(conv.stride), _pair(conv.padding), aff)
    return stem, _ops(mods[2 if bn is not None else 1:], storage, stem)


def _ops(mods: list[tuple[str, nn.Module]], storage: str, stem: Stem | None = None) -> list[Op]:
    """The ops after the stem. Average pools: on a pre-activation (after a conv + BN, or the stem)
    the pool goes into that layer; on binary activations it is an :class:`AvgPool` op of counts,
    and the ``1 / (kh kw)`` goes into the scale of the conv / linear that reads them."""
    ops: list[Op] = []
    div, vmax, pm1 = 1, 1, False  # what the next layer reads: counts <= vmax standing for counts / div

    def feed(layer: IntConv | IntLinear) -> IntConv | IntLinear:
        if div != 1:
            layer.affine = Affine(layer.affine.scale64 / div, layer.affine.bias64)
        layer.in_div, layer.in_max = div, vmax
        return layer

    i = 0
    while i < len(mods):
        name, m = mods[i]
        neuron = _neuron(name, m)
        if neuron is not None:
            ops.append(neuron)
            div, vmax, pm1 = 1, 1, neuron.kind == "sign"
        elif _is_block(m):
            sc = None
            if len(m.shortcut):
                sc_mods = list(m.shortcut)
                if len(sc_mods) != 2 or not isinstance(sc_mods[0], nn.Conv2d):
                    raise UsageError(f"block {name}: shortcut is not conv + BN")
                sc = feed(_conv(f"{name}.shortcut.0", sc_mods[0], sc_mods[1], storage))
            parts = []
            for a in ("sn1", "sn2"):
                n = _neuron(f"{name}.{a}", getattr(m, a))
                if n is None:
                    raise UsageError(f"block {name}: activation {type(getattr(m, a)).__name__} is not binary")
                parts.append(n)
            ops.append(Block(name, feed(_conv(f"{name}.conv1", m.conv1, m.bn1, storage)), parts[0],
                             _conv(f"{name}.conv2", m.conv2, m.bn2, storage), sc, parts[1], div))
            div, vmax, pm1 = 1, 1, parts[1].kind == "sign"
        elif isinstance(m, nn.Conv2d):
            bn = _bn_after(mods, i, (nn.BatchNorm2d,))
            ops.append(feed(_conv(name, m, bn, storage)))
            i += 1 if bn is not None else 0
        elif isinstance(m, nn.Linear):
            bn = _bn_after(mods, i, (nn.BatchNorm1d,))
            q, alpha = _ternary(name, m)
            ops.append(feed(IntLinear(name, Ternary.of(q, alpha, storage),
                                      _affine(alpha, m.bias, bn, m.out_features))))
            i += 1 if bn is not None else 0
        elif isinstance(m, nn.MaxPool2d):
            k, s = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
            if k[0] != k[1] or s[0] != s[1] or _pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1):
                raise UsageError(f"layer {name}: only square max-pools without padding compile")
            ops.append(MaxPool(name, k[0], s[0]))
        elif isinstance(m, nn.AvgPool2d):
            pool = _avgpool(name, m)
            prev = ops[-1] if ops else stem
            if isinstance(prev, (IntConv, Stem)):  # a pre-activation: pool the integer sums (the stem: its values)
                if prev.pool is not None:
                    raise UsageError(f"layer {name}: a second average pool on {prev.name}'s pre-activation "
                                     "does not compile; put a neuron between them")
                prev.pool = pool
            elif isinstance(prev, (Neuron, Block, MaxPool, AvgPool)):
                if pm1:
                    raise UsageError(f"layer {name}: average pooling of +-1 sign activations (bnn-act-lt) does not "
                                     "compile; pool before the sign, or use a spiking neuron")
                pool.in_max = vmax
                ops.append(pool)
                div, vmax = div * pool.div, pool.out_max
            else:
                what = f"{prev.name} ({type(prev).__name__})" if prev is not None else "nothing"
                raise UsageError(f"layer {name}: average pooling after {what} does not compile; it must follow "
                                 "a conv (+ BatchNorm), a neuron or another pool")
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):
                raise UsageError(f"layer {name}: only global average pooling compiles")
            ops.append(GlobalPool(name, vmax))
        elif isinstance(m, nn.Flatten):
            if ops and not isinstance(ops[-1], (GlobalPool, Flatten)):  # after a global pool: already [M, C]
                ops.append(Flatten(name))
        elif isinstance(m, nn.Dropout):
            pass  # identity in eval
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UsageError(f"layer {name} ({type(m).__name__}) has no exact integer form here: a BatchNorm "
                             "compiles only directly after its Conv2d / Linear (folded into it); supported: "
                             f"{', '.join(SUPPORTED)}")
        else:
            raise UsageError(f"layer {name} ({type(m).__name__}) has no exact integer form; supported: "
                             f"{', '.join(SUPPORTED)}")
        i += 1
    if not ops or not isinstance(ops[0], Neuron):
        raise UsageError("the first layer (conv + BN) must be followed by a binary neuron (LIF, IF, PLIF, sign)")
    for prev, op in zip(ops, ops[1:]):  # real values (a conv's or linear's output) feed a neuron only
        if isinstance(prev, (IntConv, IntLinear)) and not isinstance(op, Neuron):
            raise UsageError(f"layer {op.name} ({type(op).__name__}) reads the real-valued output of {prev.name}; "
                             "only a neuron (or an AvgPool2d before it) compiles there")
    if not isinstance(ops[-1], IntLinear):
        raise UsageError(f"the model must end in a Linear readout, not {ops[-1].name}; supported: {', '.join(SUPPORTED)}")
    return ops
