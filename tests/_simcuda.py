"""A ``cuda`` device that does not exist: catch device bugs in CI without a GPU.

Tensors moved or created "on cuda" are real CPU tensors of the subclass :class:`SimCuda`,
which reports ``device == cuda:0`` to Python code and checks, for every aten op, what real
CUDA checks: every tensor of an op is on the same device, except a 0-dim CPU tensor as a
*non-output* operand of a binary arithmetic op (TensorIterator's "CPU scalar" rule). A
0-dim CPU tensor as ``self`` of ``addcmul`` / ``addcdiv``, as an ``out=`` or as the target of
an in-place op is refused, as CUDA refuses it. Host syncs (``.item()``, ``bool()``,
``int()``, ``.tolist()``, a device -> host copy) are counted, so a test can assert that a
hot loop has none. Anything that would need a real GPU (``torch.cuda.*``) is stubbed by
:func:`sim_cuda`.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
aten = torch.ops.aten

# ops whose non-output operands may be 0-dim CPU tensors on CUDA (TensorIterator binary ops)
_CPU_SCALAR_OK = {
    "add", "sub", "mul", "div", "rsub", "true_divide", "floor_divide", "remainder", "pow", "eq", "ne", "lt",
    "le", "gt", "ge", "maximum", "minimum", "where", "atan2", "fmod", "logical_and", "logical_or", "bitwise_and",
    "bitwise_or", "lerp", "clamp", "clamp_min", "clamp_max", "copy", "_to_copy", "lift_fresh",
}
_SYNC_OPS = {aten._local_scalar_dense.default, aten.equal.default, aten.is_nonzero.default}


class DeviceMismatch(RuntimeError):
    """An op mixed devices the way real CUDA refuses."""


class _Stats:
    def __init__(self) -> None:
        self.syncs: list[str] = []  # host syncs, by op
        self.where: list[str] = []  # the package's own line that caused each aten-level sync
        self.ops = 0


def _caller() -> str:
    """The innermost frame of spikingjelly_lt (or the test) on the stack: who asked for the sync."""
    import traceback

    for frame in reversed(traceback.extract_stack()):
        if "spikingjelly_lt" in frame.filename or "/tests/test_" in frame.filename:
            return f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.line}"
    return "?"


STATS = _Stats()


class SimCuda(torch.Tensor):
    """A CPU tensor that says it lives on ``cuda:0`` and checks devices like CUDA does."""

    @staticmethod
    def wrap(t: torch.Tensor) -> "SimCuda":
        if isinstance(t, SimCuda):
            return t
        return torch.Tensor._make_subclass(SimCuda, t, t.requires_grad)

    @property
    def device(self) -> torch.device:  # what Python code sees
        return CUDA

    @property
    def is_cuda(self) -> bool:
        return True

    @property
    def is_cpu(self) -> bool:
        return False

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"SimCuda(shape={tuple(self.shape)}, dtype={self.dtype})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        STATS.ops += 1
        name = func.overloadpacket.__name__.rstrip("_")
        flat, _ = tree_flatten((args, kwargs))
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if func in _SYNC_OPS:
            STATS.syncs.append(name)
            STATS.where.append(_caller())
        plain = [(i, t) for i, t in enumerate(tensors) if not isinstance(t, SimCuda) and t.device.type != "meta"]
        if plain:
            out = kwargs.get("out")
            outs = [out] if isinstance(out, torch.Tensor) else list(out or ())
            inplace = func.overloadpacket.__name__.endswith("_") and name not in ("copy",)
            for i, t in plain:
                is_self = i == 0 and isinstance(args[0], torch.Tensor) and args[0] is t
                written = any(t is o for o in outs) or (inplace and is_self)
                scalar_ok = t.dim() == 0 and name in _CPU_SCALAR_OK and not written
                if name in ("copy", "_to_copy", "lift_fresh", "_copy_from", "_copy_from_and_resize"):
                    scalar_ok = not written  # host -> device copies are fine
                    if written:
                        STATS.syncs.append(f"{name} (device -> host)")
                        scalar_ok = True
                if not scalar_ok:
                    raise DeviceMismatch(
                        f"{func}: expected all tensors to be on the same device, but found cpu tensor "
                        f"(shape {tuple(t.shape)}, {'written' if written else 'read'}) with cuda:0 tensors")

        with torch._C._DisableTorchDispatch():
            result = func(*args, **kwargs)

        def wrap(r):
            if not isinstance(r, torch.Tensor):
                return r
            if isinstance(r, SimCuda) or r.device.type != "cpu":
                return r
            return SimCuda.wrap(r)

        return tree_map(wrap, result)


def _plain(t: torch.Tensor) -> torch.Tensor:
    """The CPU tensor under a SimCuda (same storage), without dispatching."""
    if not isinstance(t, SimCuda):
        return t
    with torch._C._DisableTorchDispatch(), torch._C.DisableTorchFunctionSubclass():
        return t.as_subclass(torch.Tensor)


def _is_cuda(dev) -> bool:
    if dev is None:
        return False
    if isinstance(dev, int):
        return True
    return torch.device(dev).type == "cuda"


class _Placement(TorchFunctionMode):
    """Route ``.to('cuda')``, ``.cuda()``, ``.cpu()`` and factories with ``device='cuda'``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.Tensor.to,):
            t = args[0]
            parse = {k: v for k, v in kwargs.items() if k != "copy"}
            device, dtype, non_blocking, fmt = torch._C._nn._parse_to(*args[1:], **parse)
            if isinstance(t, SimCuda) and device is not None and device.type == "cpu":
                STATS.syncs.append("to(cpu)")
                base = _plain(t)
                out = base.to(dtype=dtype or t.dtype, memory_format=fmt or torch.preserve_format, copy=True)
                return out.requires_grad_(t.requires_grad) if t.is_leaf else out
            if _is_cuda(device):
                base = _plain(t)
                out = base.to(dtype=dtype or t.dtype, memory_format=fmt or torch.preserve_format,
                              copy=bool(kwargs.get("copy")))
                return SimCuda.wrap(out)
            return func(*args, **kwargs)
        if func is torch.Tensor.cuda:
            return SimCuda.wrap(_plain(args[0]))
        if func is torch.Tensor.cpu and isinstance(args[0], SimCuda):
            STATS.syncs.append("cpu()")
            return _plain(args[0]).clone()
        if func in (torch.Tensor.tolist, torch.Tensor.numpy) and isinstance(args[0], SimCuda):
            STATS.syncs.append(func.__name__)
            return func(_plain(args[0]), *args[1:], **kwargs)
        if func in (torch.Tensor.pin_memory,):
            return args[0]
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
            kwargs.pop("pin_memory", None)
            return tree_map(lambda r: SimCuda.wrap(r) if isinstance(r, torch.Tensor) else r, func(*args, **kwargs))
        return func(*args, **kwargs)


class _Factories(TorchDispatchMode):
    """Factories asked for ``device=cuda`` (also inside autograd's backward, where torch-function
    modes are off) build a CPU tensor and hand it out as :class:`SimCuda`."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = torch.device("cpu")
            kwargs.pop("pin_memory", None)
            return tree_map(lambda r: SimCuda.wrap(r) if isinstance(r, torch.Tensor) else r, func(*args, **kwargs))
        return func(*args, **kwargs)


@contextlib.contextmanager
def sim_cuda(monkeypatch):
    """Inside: ``torch.device('cuda')`` tensors are :class:`SimCuda`; ``torch.cuda.*`` is stubbed.

    Yields the stats (``syncs``: the host syncs seen, ``ops``: aten ops run).
    """
    STATS.__init__()
    cuda = torch.cuda
    for name, value in {"is_available": lambda: True, "device_count": lambda: 1, "synchronize": lambda *a, **k: None,
                        "set_device": lambda *a, **k: None, "current_device": lambda: 0,
                        "is_bf16_supported": lambda *a, **k: True, "max_memory_allocated": lambda *a, **k: 0,
                        "reset_peak_memory_stats": lambda *a, **k: None, "get_device_name": lambda *a: "SimCuda",
                        "get_device_capability": lambda *a: (9, 0), "empty_cache": lambda: None}.items():
        monkeypatch.setattr(cuda, name, value, raising=False)
    monkeypatch.setattr(cuda, "_lazy_init", lambda: None)  # factories with device="cuda" reach the dispatcher
    overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # Module.to keeps the SimCuda class
    try:
        with _Factories(), _Placement():
            yield STATS
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
