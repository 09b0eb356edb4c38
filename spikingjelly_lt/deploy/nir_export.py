"""Export a ticket as a NIR graph (``nir`` 1.0.x, optional: ``pip install spikingjelly-lt[nir]``).

The graph is written from the compiled program (:mod:`.program`), so every weight is
already folded: a Conv2d / Affine node holds ``scale * q`` (alpha, BN and a Linear
bias folded into one per-channel scale and bias); the first conv holds the stem's
weights times its BN scale. Residual adds are two edges into one LIF node (NIR sums
a node's inputs). A non-global average pool is an ``AvgPool2d`` node (torch's semantics,
which snnTorch's importer builds); the Conv2d / Affine after it holds its weights without
the engine's ``1 / (kh kw)`` fold. Mapping of SpikingJelly's discrete LIF (docs/deploy.md)::

    SpikingJelly, per step:  H = V + (X - (V - V_reset)) / tau_sj     (decay_input)
                             S = H >= V_th;  V = V_reset if S else H   (hard reset, same step)
    NIR LIF:  tau dv/dt = (v_leak - v) + r I, Euler step dt:
                             v <- v + dt / tau * (v_leak - v + r I)
    so  tau = tau_sj * dt,  r = 1 (decay_input; r = tau_sj without it),  v_leak = 0,
        v_threshold = V_th,  v_reset = V_reset.

``dt`` defaults to 1e-4 s, the step snnTorch's ``snntorch.import_nir.import_from_nir`` assumes. The input
node takes the static image; a simulator feeds it at every one of T steps and averages
the output node over T (direct encoding, as :class:`~spikingjelly_lt.models.network.Network`).
Constructs NIR 1.0 cannot express are refused in one :class:`UsageError` line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from .compiled import CompiledNet, compile_model
from .program import AvgPool, Block, Flatten, GlobalPool, IntConv, IntLinear, MaxPool, Neuron, Ternary

__all__ = ["to_nir", "export_nir", "DEFAULT_DT"]

log = logging.getLogger("spikingjelly_lt")

DEFAULT_DT = 1e-4


def _nir():
    try:
        import nir
    except ImportError:
        raise UsageError("NIR export needs the nir package: pip install 'spikingjelly-lt[nir]'") from None
    return nir


def _out_hw(hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]) -> tuple[int, int]:
    return tuple((hw[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(2))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


class _Builder:
    def __init__(self, nir_mod, dt: float) -> None:
        self.nir, self.dt = nir_mod, float(dt)
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []

    @staticmethod
    def key(name: str) -> str:
        return name.replace(".", "_")

    def add(self, name: str, node, inputs: list[str]) -> str:
        k = self.key(name)
        self.nodes[k] = node
        self.edges += [(i, k) for i in inputs]
        return k

    def conv(self, op: IntConv, src: str, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        q = op.weight.q().to(torch.float64)
        # after an average pool the engine reads counts (1/(kh kw) in its scale); NIR's AvgPool2d divides
        w = q * (op.affine.scale64 * op.in_div).view(-1, 1, 1, 1)
        node = self.nir.Conv2d(input_shape=shape[1:], weight=_np(w), stride=op.stride, padding=op.padding,
                               dilation=1, groups=1, bias=_np(op.affine.bias64))
        k = tuple(q.shape[2:])
        src, shape = self.add(op.name, node, [src]), (q.shape[0], *_out_hw(shape[1:], k, op.stride, op.padding))
        return self.pool(op.pool, src, shape) if op.pool is not None else (src, shape)

    def pool(self, op: AvgPool, src: str, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        """NIR ``AvgPool2d`` (zero padding counted in the divisor, as torch's default)."""
        node = self.nir.AvgPool2d(kernel_size=np.array(op.kernel), stride=np.array(op.stride),
                                  padding=np.array(op.padding))
        return self.add(op.name, node, [src]), (shape[0], *_out_hw(shape[1:], op.kernel, op.stride, op.padding))

    def neuron(self, op: Neuron, srcs: list[str], shape: tuple[int, ...]) -> str:
        if op.kind == "sign":
            raise UsageError(f"layer {op.name}: NIR 1.0 has no sign activation (bnn-act-lt); export refused")
        if op.v_reset is None:
            raise UsageError(f"layer {op.name}: soft reset (v_reset=None) has no NIR 1.0 LIF form; export refused")
        ones = np.ones(shape, dtype=np.float32)
        thr, reset = ones * op.v_threshold, ones * op.v_reset
        if op.kind == "if":  # H = V + X  ->  v <- v + dt * r * I, r = 1 / dt
            node = self.nir.IF(r=ones / self.dt, v_threshold=thr, v_reset=reset)
        else:
            r = 1.0 if op.decay_input else op.tau
            node = self.nir.LIF(tau=ones * (op.tau * self.dt), r=ones * r, v_leak=ones * 0.0, v_threshold=thr,
                                v_reset=reset)
        return self.add(op.name, node, srcs)


def to_nir(net_or_model: CompiledNet | nn.Module, input_shape: tuple[int, int, int], dt: float = DEFAULT_DT):
    """The ``nir.NIRGraph`` of a compiled net (or a model, compiled here) for ``(C, H, W)`` images."""
    nir = _nir()
    net = net_or_model if isinstance(net_or_model, CompiledNet) else compile_model(net_or_model, engine="fp32")
    if net.timesteps is None:
        raise UsageError("NIR export needs a spiking network (LIF/IF neurons); this one has no time steps "
                         "(NIR 1.0 has no sign activation, so bnn-act-lt does not export)")
    if not dt > 0:
        raise UsageError(f"dt must be > 0, got {dt}")
    b = _Builder(nir, dt)
    shape = tuple(int(d) for d in input_shape)
    src = b.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    stem = net.stem
    w = (stem.weight.q().to(torch.float64) if isinstance(stem.weight, Ternary) else stem.weight.to(torch.float64))
    w = w * stem.affine.scale64.view(-1, 1, 1, 1)
    src = b.add(stem.name, nir.Conv2d(input_shape=shape[1:], weight=_np(w), stride=stem.stride,
                                      padding=stem.padding, dilation=1, groups=1, bias=_np(stem.affine.bias64)),
                [src])
    shape = (w.shape[0], *_out_hw(shape[1:], tuple(w.shape[2:]), stem.stride, stem.padding))
    if stem.pool is not None:
        src, shape = b.pool(stem.pool, src, shape)
    pooled = False
    for op in net.ops:
        if isinstance(op, Neuron):
            src = b.neuron(op, [src], shape)
        elif isinstance(op, Block):
            x1, s1 = b.conv(op.conv1, src, shape)
            n1 = b.neuron(op.sn1, [x1], s1)
            x2, s2 = b.conv(op.conv2, n1, s1)
            if op.shortcut is not None:
                xs, _ = b.conv(op.shortcut, src, shape)
            else:
                xs = src
            src, shape = b.neuron(op.sn2, [x2, xs], s2), s2
        elif isinstance(op, IntConv):
            src, shape = b.conv(op, src, shape)
        elif isinstance(op, MaxPool):
            raise UsageError(f"layer {op.name}: NIR 1.0 has no max-pooling node (VGG-16's MaxPool2d); export refused")
        elif isinstance(op, AvgPool):
            src, shape = b.pool(op, src, shape)
        elif isinstance(op, GlobalPool):
            hw = np.array(shape[1:])
            src = b.add(op.name, nir.AvgPool2d(kernel_size=hw, stride=hw, padding=np.array([0, 0])), [src])
            shape = (shape[0], 1, 1)
            src = b.add(f"{op.name}.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                                          end_dim=-1), [src])
            shape, pooled = (shape[0],), True
        elif isinstance(op, Flatten):  # conv -> Flatten -> Linear (a user's graph)
            src = b.add(op.name, nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
                        [src])
            shape = (int(np.prod(shape)),)
        elif isinstance(op, IntLinear):
            if len(shape) != 1:
                raise UsageError(f"layer {op.name}: a Linear on a {len(shape)}-d input has no NIR Affine form")
            w = op.weight.q().to(torch.float64) * (op.affine.scale64 * op.in_div).view(-1, 1)
            src = b.add(op.name, nir.Affine(weight=_np(w), bias=_np(op.affine.bias64)), [src])
            shape = (w.shape[0],)
    if not pooled:
        log.debug("NIR graph without a global pool")
    b.add("output", nir.Output(output_type={"output": np.array(shape)}), [src])
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges)


def export_nir(source: str | os.PathLike | nn.Module, out: str | os.PathLike, *, dt: float = DEFAULT_DT,
               data_dir: str | None = None) -> dict:
    """Write the NIR graph of a ticket / checkpoint / model to ``out`` (HDF5); returns a summary."""
    from .run import load_model

    if isinstance(source, nn.Module):
        model = source
        spec = {"in_channels": None, "input_size": None}
    else:
        model, spec, _ = load_model(source, data_dir)
    if spec.get("in_channels") is None:
        raise UsageError("export_nir(model) needs a ticket or checkpoint (the input shape comes from its spec)")
    shape = (int(spec["in_channels"]), int(spec["input_size"]), int(spec["input_size"]))
    net = compile_model(model, engine="fp32")
    graph = to_nir(net, shape, dt)
    nir = _nir()
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a directory; give a file name for the NIR graph")
    if not isinstance(source, nn.Module) and out.exists() and out.resolve() == Path(source).resolve():
        raise UsageError(f"{out} is the input file; write the NIR graph somewhere else")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        nir.write(str(tmp), graph)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the NIR graph to {out}: {exc.strerror or exc}") from None
    kinds: dict[str, int] = {}
    for node in graph.nodes.values():
        kinds[type(node).__name__] = kinds.get(type(node).__name__, 0) + 1
    log.info("wrote NIR graph %s: %d nodes, %d edges", out, len(graph.nodes), len(graph.edges))
    return {"file": str(out), "nodes": len(graph.nodes), "edges": len(graph.edges), "node_kinds": kinds,
            "dt": dt, "timesteps": net.timesteps, "input_shape": list(shape), "bytes": out.stat().st_size,
            "arch": spec.get("arch"), "method": spec.get("method")}
