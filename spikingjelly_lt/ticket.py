"""Compact ticket files: a trained model in a few bits per weight, rebuilt bit-exactly.

A BinW-SLT ticket is fully described by the seed (the frozen random weights regrow
from it through :func:`~spikingjelly_lt.build.build_model`), one mask bit per weight,
one alpha per layer and the BatchNorm tensors. With ``store_signs=True`` the file
does not rely on the seed: it also holds one sign bit per *kept* weight (a pruned
weight's sign never reaches the forward pass). Every other method exports too:

==================  ===========================================================
layer kind          stored
==================  ===========================================================
supermask-binary    mask bits, alpha; sign bits of kept weights, or nothing (seed)
supermask-fp        mask bits; kept fp32 weights, or nothing (seed)
binary              sign bits, alpha (BNN / BinW-SNN trained binary weights)
pruned              mask bits, kept fp32 weights (IMP)
dense               fp32 weights (dense methods, ``keep_first``/``keep_last``)
==================  ===========================================================

With sign bits, the mask field is the non-zero pattern of the effective weight: the
mask itself, less any kept weight that is exactly 0 (it runs as 0; ~1 in 10^7 draws).

Everything else in the state_dict (BN parameters and buffers, biases) is stored
raw with its dtype; a tensor whose elements are all equal is stored as one value.

File layout (version 1, little-endian)::

    0   8 bytes  magic b"\\x89SJLTKT\\n"
    8   uint16   format version
    10  uint16   flags (0)
    12  uint32   header length H
    16  uint64   payload length P
    24  H bytes  JSON header (arch, method, seed, cell, spec = cell fields + data shape, layers, tensors)
    ..  P bytes  payload: packed bits (numpy.packbits, big bit order), raw tensors
    ..  32 bytes sha256 of everything before it

Reading checks magic, version, length and checksum before trusting a byte, so a
truncated or modified file is one :class:`~spikingjelly_lt.errors.UsageError`.
Export checks that the file reproduces every effective weight bit for bit (and, from
the seed, that :func:`build_model` regrows the frozen weights bit for bit); load
checks the regrown weights against a sha256 stored at export.
"""

from __future__ import annotations

import copy

import hashlib
import json
import logging
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ._versions import dist_version
from .build import DataShape, build_model
from .cell import Cell, flatten
from .errors import UsageError
from .methods import resolve
from .nn.binary import BinaryWeight
from .nn.masks import WeightMask
from .nn.supermask import Supermask
from .pruners.common import effective_weight, latent_weight, prunable_layers

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "Ticket",
    "export_ticket",
    "load_ticket",
    "read_ticket",
    "model_from_checkpoint",
    "TicketSpec",
]

log = logging.getLogger("spikingjelly_lt")

MAGIC = b"\x89SJLTKT\n"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sHHIQ")  # magic, version, flags, header length, payload length
_DIGEST = 32
_FORMAT = "spikingjelly-lt-ticket"


# -- small helpers ---------------------------------------------------------------------


def _key(module_name: str, attr: str) -> str:
    return f"{module_name}.{attr}" if module_name else attr


def _bits(t: torch.Tensor) -> torch.Tensor:
    """An integer view of a float tensor, for bit-exact comparison (-0.0 != 0.0)."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype.is_floating_point and t.element_size() in (2, 4, 8):
        return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    return t


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _tensor_from(buf: bytes, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    if not buf:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(buf), dtype=dtype).reshape(shape).clone()


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise UsageError(f"ticket holds a tensor of unknown dtype {name!r}")
    return dtype


def _pack(mask: torch.Tensor) -> bytes:
    return np.packbits(mask.detach().cpu().reshape(-1).numpy().astype(bool)).tobytes()


def _unpack(buf: bytes, count: int) -> torch.Tensor:
    if len(buf) != (count + 7) // 8:
        raise UsageError(f"ticket bit field holds {len(buf)} bytes, expected {(count + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=count).astype(bool)
    return torch.from_numpy(bits)


def _f32(values: torch.Tensor) -> bytes:
    return values.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def _from_f32(buf: bytes) -> torch.Tensor:
    if len(buf) % 4:
        raise UsageError("ticket fp32 field has a length that is not a multiple of 4")
    return torch.from_numpy(np.frombuffer(buf, dtype="<f4").astype(np.float32))


class _Payload:
    """Appends blobs and remembers where each one starts."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self._at: dict[tuple[int, int], bytes] = {}

    def add(self, data: bytes) -> list[int]:
        ref = [self.size, len(data)]
        self.parts.append(data)
        self._at[(self.size, len(data))] = data
        self.size += len(data)
        return ref

    def get(self, ref) -> bytes:
        return self._at[(ref[0], ref[1])]


@dataclass(frozen=True)
class TicketSpec:
    """What rebuilds a ticket's model: its cell and the data shape it was built for."""

    cell: Cell
    shape: DataShape

    arch = property(lambda self: self.cell.model.arch)
    method = property(lambda self: self.cell.method)
    seed = property(lambda self: self.cell.seed)
    num_classes = property(lambda self: self.shape.num_classes)
    in_channels = property(lambda self: self.shape.in_channels)
    input_size = property(lambda self: self.shape.input_size)

    def to_dict(self) -> dict:
        """Flat (leaf names + shape): the ticket header's ``spec``, readable by format-1 readers."""
        return {**asdict(self.shape), **flatten(self.cell.to_dict())}

    @classmethod
    def from_dict(cls, d: dict) -> TicketSpec:
        shape = DataShape(**{k: int(d[k]) for k in ("num_classes", "in_channels", "input_size") if k in d})
        return cls(Cell.from_dict(d), shape)


def _build(spec: TicketSpec) -> nn.Module:
    """``build_model`` of the spec without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        return build_model(resolve(spec.cell), spec.shape)


# -- what each layer is ----------------------------------------------------------------


def _layer_kind(module: nn.Module) -> tuple[str, nn.Module | None]:
    """(kind, its parametrization or None) of a prunable layer."""
    if parametrize.is_parametrized(module, "weight"):
        plist = list(module.parametrizations.weight)
        if len(plist) == 1 and isinstance(plist[0], Supermask):
            return ("supermask-binary" if plist[0].binary else "supermask-fp"), plist[0]
        if len(plist) == 1 and isinstance(plist[0], BinaryWeight):
            return "binary", plist[0]
        if len(plist) == 1 and isinstance(plist[0], WeightMask):
            return "pruned", plist[0]
        return "dense", None  # an unknown parametrization: ship its effective weight
    return "dense", None


def _frozen(module: nn.Module) -> torch.Tensor:
    """The frozen (or latent) weight under a parametrization."""
    return latent_weight(module).detach()


def _effective(module: nn.Module) -> torch.Tensor:
    return effective_weight(module).clone()


def _alpha(w_eff: torch.Tensor, formula) -> float:
    """The alpha that runs: every non-zero effective weight is exactly +-alpha (on any device)."""
    value = w_eff.abs().max() if bool((w_eff != 0).any()) else formula()
    return float(value.to(torch.float32))


def _encode_layer(name: str, module: nn.Module, payload: _Payload, from_seed: bool) -> dict:
    """The header entry of one layer; its blobs go to ``payload``."""
    kind, param = _layer_kind(module)
    w_eff = _effective(module).cpu()
    entry: dict = {"name": name, "shape": list(w_eff.shape), "kind": kind, "numel": w_eff.numel()}
    if kind.startswith("supermask"):
        mask = param.mask().detach().cpu().bool()
        W = _frozen(module).cpu()
        entry["kept"] = int(mask.sum())
        if kind == "supermask-binary":
            entry["alpha"] = _alpha(w_eff, lambda: (W.abs() * mask.to(W.dtype)).sum() / mask.sum().clamp_min(1))
            if from_seed:
                entry["source"] = "seed"
                entry["mask"] = payload.add(_pack(mask))
            else:  # the non-zero pattern (a kept weight of exactly 0 runs as 0) + its signs
                nonzero = w_eff != 0
                entry["source"] = "signs"
                entry["mask"] = payload.add(_pack(nonzero))
                entry["signs"] = payload.add(_pack(w_eff[nonzero] > 0))
        else:
            entry["mask"] = payload.add(_pack(mask))
            entry["alpha"] = None
            if from_seed:
                entry["source"] = "seed"
            else:
                entry["source"] = "fp32"
                entry["values"] = payload.add(_f32(W[mask]))
    elif kind == "binary":
        W = _frozen(module).cpu()
        nonzero = w_eff != 0
        entry.update(kept=int(nonzero.sum()), alpha=_alpha(w_eff, lambda: W.abs().mean()), source="signs")
        if not bool(nonzero.all()):  # a latent weight of exactly 0 runs as 0
            entry["mask"] = payload.add(_pack(nonzero))
        entry["signs"] = payload.add(_pack(w_eff[nonzero] > 0))
    elif kind == "pruned":
        mask = param.mask.detach().cpu() != 0
        entry.update(kept=int(mask.sum()), alpha=None, source="fp32", mask=payload.add(_pack(mask)),
                     values=payload.add(_f32(_frozen(module).cpu()[mask])))
    else:
        entry.update(kept=int(torch.count_nonzero(w_eff)), alpha=None, source="fp32",
                     values=payload.add(_f32(w_eff.reshape(-1))))
    return entry


def _decode_layer(entry: dict, blob, frozen: torch.Tensor | None) -> torch.Tensor:
    """The effective weight of one layer entry (``frozen``: the regrown W, seed sources)."""
    shape, numel, kind, source = entry["shape"], int(entry["numel"]), entry["kind"], entry["source"]
    if int(np.prod(shape, dtype=np.int64)) != numel:
        raise UsageError(f"ticket layer {entry['name']}: shape {shape} does not hold {numel} weights")
    alpha = torch.tensor(entry["alpha"], dtype=torch.float32) if entry.get("alpha") is not None else None

    def kept_values(mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if values.numel() != int(mask.sum()):
            raise UsageError(
                f"ticket layer {entry['name']}: {values.numel()} values for {int(mask.sum())} kept weights")
        w = torch.zeros(numel, dtype=torch.float32)
        w[mask] = values
        return w.reshape(shape)

    def signs_of(mask: torch.Tensor) -> torch.Tensor:
        count = int(mask.sum())
        bits = _unpack(blob(entry["signs"]), count)
        s = torch.zeros(numel, dtype=torch.float32)
        s[mask] = torch.where(bits, 1.0, -1.0)
        return s.reshape(shape)

    if kind in ("supermask-binary", "supermask-fp"):
        mask = _unpack(blob(entry["mask"]), numel)
        m = mask.reshape(shape).to(torch.float32)
        if source == "seed":
            if frozen is None:
                raise UsageError(f"ticket layer {entry['name']}: no regrown weights for a seed layer")
            sign = torch.sign(frozen)
        elif kind == "supermask-binary" and source == "signs":
            sign = signs_of(mask)
        elif kind == "supermask-fp" and source == "fp32":
            return kept_values(mask, _from_f32(blob(entry["values"])))
        else:
            raise UsageError(f"ticket layer {entry['name']}: unknown source {source!r} for {kind}")
        if kind == "supermask-binary":
            return sign * (alpha * m)  # the same ops as Supermask.forward: bit-identical
        return frozen * m
    if kind == "binary":
        if "mask" in entry:
            return alpha * signs_of(_unpack(blob(entry["mask"]), numel))
        bits = _unpack(blob(entry["signs"]), numel)
        return alpha * torch.where(bits, 1.0, -1.0).reshape(shape)
    if kind == "pruned":
        return kept_values(_unpack(blob(entry["mask"]), numel), _from_f32(blob(entry["values"])))
    if kind == "dense":
        values = _from_f32(blob(entry["values"]))
        if values.numel() != numel:
            raise UsageError(f"ticket layer {entry['name']}: {values.numel()} values for {numel} weights")
        return values.reshape(shape)
    raise UsageError(f"ticket layer {entry['name']}: unknown kind {kind!r} (a newer spikingjelly-lt?)")


def _seed_digest(weights: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(_tensor_bytes(w.to(torch.float32)))
    return h.hexdigest()


# -- checkpoints -----------------------------------------------------------------------


def model_from_checkpoint(
    path: str | os.PathLike, data_dir: str | None = None
) -> tuple[nn.Module, TicketSpec, dict]:
    """A trainer checkpoint's model as a ticket sees it: ``(model, spec, cell dict)``
    (:func:`~spikingjelly_lt.training.checkpoint.load_trained`, the one loader)."""
    from .training.checkpoint import load_trained

    resolved, bundle, model = load_trained(path, data_dir)
    return model, TicketSpec(resolved.cell, DataShape.of(bundle)), resolved.cell.to_dict()


# -- export ----------------------------------------------------------------------------


def export_ticket(
    source: str | os.PathLike | nn.Module,
    out: str | os.PathLike,
    *,
    store_signs: bool = False,
    spec: TicketSpec | None = None,
    cell: dict | None = None,
    data_dir: str | None = None,
) -> Ticket:
    """Write ``source`` (a trainer checkpoint path, or a model: built by ``build_model``, which
    records its cell and data shape, or any module with the ``spec`` that rebuilds it) to ``out``.

    ``store_signs=False`` regrows frozen supermask weights from the seed (1 bit per
    weight for a BinW-SLT ticket); ``True`` stores the sign bits of kept binary
    supermask weights (the kept fp32 weights of fp supermasks) instead. ``cell``: the
    cell config recorded with a model (a checkpoint brings its own). Returns the
    written :class:`Ticket`. Raises :class:`UsageError` when the file could not
    reproduce the model bit for bit.
    """
    if isinstance(source, nn.Module):
        if spec is None and getattr(source, "sjlt_built_from", None) is not None:
            spec = TicketSpec(*source.sjlt_built_from)  # built by build_model: its cell and data shape
        if spec is None:
            raise UsageError(
                "export_ticket(model, ...) needs spec=TicketSpec(cell, shape) saying how `ticket load` rebuilds "
                "the module: a cell whose model.arch is a registered name or a reference ('mynet.py:make', "
                "'pkg.mod:make') and its data shape; layers whose frozen weights do not regrow from the cell's "
                "seed store their sign bits. A trained cell's checkpoint (RESULTS.db.ckpt/<hash>.pt) needs none")
        model = source
        cell = cell if cell is not None else spec.cell.to_dict()
    else:
        model, spec, cell = model_from_checkpoint(source, data_dir)
    from_seed = not store_signs
    fresh = _build(spec)
    from .models.user import UserNet

    if isinstance(fresh, UserNet) and not isinstance(model, UserNet):
        # the user's own module as they built it: seen inside the wrapper `ticket load` rebuilds
        wrapped = copy.deepcopy(fresh)
        wrapped.net = model
        model = wrapped
    fresh_modules = dict(fresh.named_modules())
    fresh_state = fresh.state_dict()

    payload = _Payload()
    layers, seed_weights = [], []
    for name, module in prunable_layers(model):
        other = fresh_modules.get(name)
        if not isinstance(other, (nn.Conv2d, nn.Linear)) or other.weight.shape != module.weight.shape:
            raise UsageError(
                f"layer {name!r} of the model does not match a {spec.arch}/{spec.method} built from its spec")
        layer_from_seed = from_seed
        if from_seed and _layer_kind(module)[0].startswith("supermask"):
            # a layer whose frozen weights do not regrow from the recorded seed (a model that was not
            # built from its spec's seed, weights set by hand, another torch version's generator)
            # stores what it needs instead: sign bits (binary) or kept fp32 values
            regrown = _frozen(other) if parametrize.is_parametrized(other, "weight") else None
            if regrown is None or not torch.equal(_bits(regrown), _bits(_frozen(module).cpu())):
                log.info("layer %s: frozen weights do not regrow from seed %d; storing its %s", name, spec.seed,
                         "sign bits" if _layer_kind(module)[0] == "supermask-binary" else "kept fp32 values")
                layer_from_seed = False
        entry = _encode_layer(name, module, payload, layer_from_seed)
        if entry["source"] == "seed":
            seed_weights.append(_frozen(module).cpu())
        # self-check: the file must give back exactly the weight that runs
        got = _decode_layer(entry, payload.get, _frozen(module).cpu() if entry["source"] == "seed" else None)
        if not torch.equal(got, _effective(module).cpu()):
            raise UsageError(f"layer {name} ({entry['kind']}) cannot be stored exactly (a weight of exactly 0?)")
        layers.append(entry)

    tensors = []
    layer_names = {e["name"] for e in layers}
    for key, t in model.state_dict().items():
        if any(key == _key(n, "weight") or key.startswith(_key(n, "parametrizations.weight.")) for n in layer_names):
            continue
        if key not in fresh_state or tuple(fresh_state[key].shape) != tuple(t.shape):
            raise UsageError(
                f"tensor {key!r} of the model does not match a {spec.arch}/{spec.method} built from its spec")
        raw = _tensor_bytes(t)
        entry = {"name": key, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        size = t.element_size()
        if t.numel() > 1 and raw == raw[:size] * t.numel():
            entry["fill"] = raw[:size].hex()
        else:
            entry["data"] = payload.add(raw)
        tensors.append(entry)

    header = {
        "format": _FORMAT,
        "arch": spec.arch,
        "method": spec.method,
        "seed": spec.seed,
        "spec": spec.to_dict(),
        "cell": flatten(cell) if cell else None,  # flat leaf names, as format-1 readers expect
        "from_seed": bool(seed_weights),
        "seed_weights_sha256": _seed_digest(seed_weights) if seed_weights else None,
        "layers": layers,
        "tensors": tensors,
        "bit_order": "big",
        "created_with": {"spikingjelly_lt": dist_version("spikingjelly-lt"), "torch": torch.__version__},
    }
    data = _serialize(header, b"".join(payload.parts))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    ticket = _parse(data, str(out))
    log.info("wrote ticket %s: %d bytes, %.3f bits per weight", out, len(data), ticket.sizes()["bits_per_weight"])
    return ticket


def _serialize(header: dict, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    head = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    body = _FIXED.pack(MAGIC, version, 0, len(head), len(payload)) + head + payload
    return body + hashlib.sha256(body).digest()


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """A verified ticket file: its JSON header and its payload bytes."""

    header: dict
    payload: bytes
    file_bytes: int
    header_bytes: int
    path: str | None = None

    def spec(self) -> TicketSpec:
        return TicketSpec.from_dict(self.header["spec"])

    def blob(self, ref) -> bytes:
        off, n = int(ref[0]), int(ref[1])
        if off < 0 or n < 0 or off + n > len(self.payload):
            raise UsageError(f"ticket {self.path}: a field points outside the payload (corrupt file)")
        return self.payload[off:off + n]

    def sizes(self) -> dict:
        """Bytes by part (masks, signs, fp32 weights, other tensors, header) and bits per weight."""
        parts = {"masks": 0, "signs": 0, "weights_fp32": 0}
        for e in self.header["layers"]:
            for field, part in (("mask", "masks"), ("signs", "signs"), ("values", "weights_fp32")):
                if field in e:
                    parts[part] += int(e[field][1])
        parts["tensors"] = sum(int(t["data"][1]) for t in self.header["tensors"] if "data" in t)
        numel = sum(int(e["numel"]) for e in self.header["layers"])
        return {
            "file": self.file_bytes,
            **parts,
            "header": self.header_bytes,
            "framing": _FIXED.size + _DIGEST,
            "weights": numel,
            "bits_per_weight": 8 * self.file_bytes / max(numel, 1),
        }

    def build(self) -> nn.Module:
        """Rebuild the model: ``build_model`` of its spec, then the stored weights and tensors.

        Returns an inference model (eval mode, no gradients) whose prunable layers hold
        their effective weight as a plain tensor, as ``pruners.supermask.bake`` leaves
        them; its forward is bit-identical to the exported model's.
        """
        spec = self.spec()
        try:
            model = _build(spec)
        except UsageError as exc:
            raise UsageError(
                f"ticket {self.path}: cannot build its {spec.arch}/{spec.method} model: {exc}") from None
        modules = dict(model.named_modules())
        regrown = []
        weights = {}
        for entry in self.header["layers"]:
            module = modules.get(entry["name"])
            if not isinstance(module, (nn.Conv2d, nn.Linear)) or list(module.weight.shape) != list(entry["shape"]):
                raise UsageError(
                    f"ticket {self.path}: layer {entry['name']!r} does not match the model built from its spec")
            frozen = _frozen(module).clone() if parametrize.is_parametrized(module, "weight") else None
            if entry["source"] == "seed":
                if frozen is None:
                    raise UsageError(f"ticket {self.path}: layer {entry['name']} regrows from the seed "
                                     "but its model has no frozen weights")
                regrown.append(frozen)
            weights[entry["name"]] = (entry, frozen)
        if regrown and _seed_digest(regrown) != self.header.get("seed_weights_sha256"):
            raise UsageError(
                f"ticket {self.path}: the frozen weights regrown from seed {spec.seed} differ from the exported ones "
                "(another torch version?); re-export it with --store-signs")
        for name, (entry, frozen) in weights.items():
            w = _decode_layer(entry, self.blob, frozen if entry["source"] == "seed" else None)
            module = modules[name]
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            with torch.no_grad():
                module.weight.copy_(w)
        state = {}
        for t in self.header["tensors"]:
            dtype = _dtype(t["dtype"])
            if "fill" in t:
                one = _tensor_from(bytes.fromhex(t["fill"]), dtype, [1])
                state[t["name"]] = one.expand(t["shape"]).clone()
            else:
                state[t["name"]] = _tensor_from(self.blob(t["data"]), dtype, t["shape"])
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise UsageError(f"ticket {self.path} does not match the model built from its spec: {first}") from None
        expected_missing = {_key(n, "weight") for n in weights}
        if set(missing) != expected_missing or unexpected:
            extra = sorted(set(missing) - expected_missing) + sorted(unexpected)
            raise UsageError(
                f"ticket {self.path} does not match the model built from its spec ({', '.join(extra[:3])})")
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()


def _parse(data: bytes, where: str) -> Ticket:
    if len(data) < _FIXED.size + _DIGEST:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            raise UsageError(f"{where}: not a spikingjelly-lt ticket (bad magic)")
        raise UsageError(f"{where}: truncated ticket ({len(data)} bytes)")
    magic, version, _flags, head_len, payload_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise UsageError(f"{where}: not a spikingjelly-lt ticket (bad magic)")
    if version != FORMAT_VERSION:
        raise UsageError(
            f"{where}: ticket format version {version}; this spikingjelly-lt reads version {FORMAT_VERSION}")
    expected = _FIXED.size + head_len + payload_len + _DIGEST
    if len(data) < expected:
        raise UsageError(f"{where}: truncated ticket ({len(data)} of {expected} bytes)")
    if len(data) > expected:
        raise UsageError(f"{where}: corrupt ticket ({len(data) - expected} bytes after the checksum)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise UsageError(f"{where}: ticket checksum mismatch (the file is corrupt or was modified)")
    try:
        header = json.loads(body[_FIXED.size:_FIXED.size + head_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UsageError(f"{where}: corrupt ticket header") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise UsageError(f"{where}: not a spikingjelly-lt ticket (unknown header format)")
    payload = body[_FIXED.size + head_len:]
    return Ticket(header, payload, len(data), head_len, where)


def read_ticket(path: str | os.PathLike) -> Ticket:
    """Read and verify a ticket file (magic, version, length, sha256)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"ticket {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"ticket {path}: cannot read ({exc.strerror})") from None
    return _parse(data, str(path))


def load_ticket(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model stored in a ticket file (see :meth:`Ticket.build`)."""
    return read_ticket(path).build()
