"""One description of a benchmark cell: what model, trained how, on what data.

A :class:`Cell` nests a :class:`ModelSpec` (structure and initial weights), a
:class:`Recipe` (how it trains and how its ticket is searched) and a :class:`DataSpec`.
Every field is defined once, here, with its help text, type and valid range; the CLI's
``--set model.tau=1.5``, ``--config FILE.toml`` and ``sjlt config show`` read these
definitions. A field marked ``conditional`` counts toward the cell's identity only when
one of the method's components (neuron, architecture, pruner) declares that it uses it
(see :mod:`spikingjelly_lt.methods`); every other field always counts.

This module is plain data: it knows no registry. Resolving names into objects happens
once, in :func:`spikingjelly_lt.methods.resolve`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import UsageError

__all__ = ["Cell", "ModelSpec", "Recipe", "DataSpec", "SECTIONS", "knobs", "Knob", "parse_assignment",
           "read_config_file", "flatten", "canonical_json", "cell_hash"]

SECTIONS = ("model", "recipe", "data")


def knob(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False, choices: tuple | None = None,
         conditional: bool = False, keyed_when_set: bool = False):
    """A cell field with its help text and valid range (inclusive unless ``lo_open`` / ``hi_open``).

    ``keyed_when_set``: a field added after results were stored joins a cell's identity
    only when set away from its default, so every cell stored before it keeps its hash
    (and resumes); a cell that sets it is a different cell.
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices,
            "conditional": conditional, "keyed_when_set": keyed_when_set}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelSpec:
    """What decides a model's structure and its initial weights (with the cell's seed)."""

    arch: str = knob("resnet19", "architecture (any registered: `sjlt plugins`), or path/to/file.py:callable, "
                                 "pkg.module:callable")
    width: float = knob(0.25, "channel width multiplier", lo=0.0, hi=4.0, lo_open=True)
    timesteps: int = knob(4, "time steps T of a spiking network", lo=1, hi=4096, conditional=True)
    tau: float = knob(2.0, "LIF membrane time constant (Kim et al. use 4/3)", lo=1.0, conditional=True)
    v_threshold: float = knob(1.0, "firing threshold of spiking neurons", lo=0.0, lo_open=True, conditional=True)
    lif_impl: str = knob("auto", "LIF implementation: auto (the faster of fast and torch, measured on this "
                                 "machine: `sjlt tune`) | fast (one fused op over T, the C++ kernel) | torch (the "
                                 "same op in torch ops) | spikingjelly (its LIFNode)",
                         choices=("auto", "fast", "torch", "spikingjelly"), conditional=True)
    sign_gradient: str = knob("bireal", "backward of the sign activation: bireal | ste",
                              choices=("bireal", "ste"), conditional=True)
    fc_bn: bool = knob(True, "BatchNorm1d after ResNet-19's FC 512->256 (keeps the spiking FC from falling silent)",
                       conditional=True)
    keep_first: bool = knob(False, "keep the first conv dense (trained like a dense layer)", conditional=True)
    keep_last: bool = knob(False, "keep the classifier dense (trained like a dense layer)", conditional=True)
    learn_bn: bool = knob(False, "train BatchNorm affine parameters of a supermask network", conditional=True)
    scope: str = knob("layer", "supermask top-k: per layer, or one global threshold",
                      choices=("layer", "global"), conditional=True)
    layer_density: str = knob("uniform", "supermask kept fraction per layer (scope=layer): uniform (every layer "
                                         "at the target sparsity) | erk (Erdos-Renyi-Kernel, Evci et al.: "
                                         "density proportional to (sum of dims) / (product of dims), the same "
                                         "overall sparsity)", choices=("uniform", "erk"), conditional=True,
                              keyed_when_set=True)
    neuron: str = knob("", "spiking methods: replace every neuron of the model by this registered one (e.g. lif); "
                           "empty = the method's own, and a model by reference (--arch FILE.py:make) keeps its "
                           "neurons as built", conditional=True)


@dataclass(frozen=True)
class Recipe:
    """How the cell trains and how its pruner searches the ticket."""

    epochs: int = knob(10, "epochs per training run (per pruning round)", lo=0, hi=100_000)
    batch_size: int = knob(64, "training batch size", lo=1)
    precision: str = knob("fp32", "compute precision of training and evaluation: fp32 (exact fp32, TF32 off "
                                  "on GPUs) | bf16 (autocast; membranes, BN statistics, loss and optimizer stay "
                                  "fp32; needs a CPU with avx512_bf16 or amx_bf16, or a GPU) | fp16 (CUDA, "
                                  "autocast + gradient scaling) | tf32 (CUDA: fp32 with TF32 matmuls and "
                                  "convolutions)", choices=("fp32", "bf16", "fp16", "tf32"))
    memory_format: str = knob("auto", "layout of image tensors and conv weights: auto (the faster, measured on "
                                      "this machine: `sjlt tune`) | channels_last | contiguous (NCHW)",
                              choices=("auto", "channels_last", "contiguous"))
    denormals: str = knob("auto", "CPU denormal floats: auto (flushed where that measures faster) | flush | keep",
                          choices=("auto", "flush", "keep"))
    val_fraction: float = knob(0.1, "fraction of the training images held out as the validation split "
                                    "(stratified, seeded, the same for every cell); every in-run choice "
                                    "uses it, test is measured once at the end (0 = no split)", lo=0.0, hi=0.5)
    lr: float = knob(0.1, "SGD learning rate of trained weights (momentum 0.9, cosine)", lo=0.0, conditional=True)
    weight_decay: float = knob(5e-4, "SGD weight decay of trained weights", lo=0.0, conditional=True)
    score_lr: float = knob(0.1, "Adam learning rate of supermask scores (cosine, no weight decay)", lo=0.0,
                           conditional=True)
    score_optimizer: str = knob("adam", "optimizer of supermask scores: adam (no weight decay) | sgd (momentum "
                                        "0.9, no weight decay, as edge-popup; lr = score_lr, cosine)",
                                choices=("adam", "sgd"), conditional=True, keyed_when_set=True)
    iterand_period: int = knob(0, "IteRand (Chijiwa et al. 2021): every K_per optimizer steps re-draw a fraction "
                                  "of the currently pruned frozen weights from a seeded generator (0 = off)",
                               lo=0, conditional=True, keyed_when_set=True)
    iterand_rate: float = knob(0.1, "IteRand: fraction r of the pruned weights re-drawn at each re-randomization",
                               lo=0.0, hi=1.0, lo_open=True, conditional=True, keyed_when_set=True)
    freeze_pruned: float = knob(0.0, "partial freezing (Otsuka et al. 2024): a seeded random fraction of every "
                                     "supermask layer's weights permanently pruned (at most the sparsity)",
                                lo=0.0, hi=1.0, hi_open=True, conditional=True, keyed_when_set=True)
    freeze_kept: float = knob(0.0, "partial freezing: a seeded random fraction of every supermask layer's weights "
                                   "permanently kept (at most the kept fraction 1 - sparsity)",
                              lo=0.0, hi=1.0, hi_open=True, conditional=True, keyed_when_set=True)
    ramp_epochs: int = knob(0, "supermask global scope: ramp the kept fraction from 0.5 to the target over "
                               "the first E epochs (biprop's cubic schedule; 0 = off)", lo=0, conditional=True)
    imp_rounds: int = knob(2, "IMP pruning rounds K (K+1 training runs); ignored when imp_rate > 0", lo=1,
                           conditional=True)
    imp_rate: float = knob(0.0, "IMP: prune this fraction of the remaining weights per round, as many rounds "
                                "as reach the target, the last one exactly (Kim et al.: 0.25); 0 = imp_rounds "
                                "equal rounds", lo=0.0, hi=1.0, hi_open=True, conditional=True)
    rewind_epoch: int = knob(1, "IMP: rewind surviving weights to their values after this epoch", lo=0,
                             conditional=True)
    rewind_lr: bool = knob(False, "IMP: also resume the lr schedule at the rewind step (Frankle-style) "
                                  "instead of restarting it", conditional=True)
    et_epochs: int = knob(2, "early-time ticket: epochs at full T before T' is chosen (N)", lo=1, conditional=True)
    et_lambda: float = knob(0.6, "early-time ticket: normalized-KL bound for T' (lambda)", lo=0.0, hi=1.0,
                            conditional=True)
    et_images: int = knob(1000, "early-time ticket: training images the KL rule looks at", lo=1, conditional=True)
    eb_tau: float = knob(0.02, "early-bird: mask distance under which consecutive masks count as stable",
                         lo=0.0, hi=1.0, conditional=True)
    eb_patience: int = knob(5, "early-bird: epochs the mask must stay stable (q)", lo=1, conditional=True)
    gmp_initial: float = knob(0.0, "gradual pruning: initial sparsity s_i", lo=0.0, hi=1.0, conditional=True)
    gmp_start_epoch: int = knob(0, "gradual pruning: epoch where the schedule starts (t_0)", lo=0,
                                conditional=True)
    gmp_end_epoch: int = knob(0, "gradual pruning: epoch where the target is reached (0 = 3/4 of the epochs)",
                              lo=0, conditional=True)
    gmp_interval: int = knob(10, "gradual pruning: prune every n steps (dt)", lo=1, conditional=True)


@dataclass(frozen=True)
class DataSpec:
    """Which images the cell trains and tests on."""

    dataset: str = knob("digits", "data set (any registered: `sjlt plugins`), or tensors:PATH, imagefolder:DIR, "
                                  "frames:PATH, pkg.module:callable")
    limit_train: int | None = knob(None, "use only the first N training images", lo=1)
    limit_test: int | None = knob(None, "use only the first N test images", lo=1)
    resize: int = knob(0, "resize every image to this size (bilinear) before training, e.g. 28 for a model "
                          "built for MNIST; 0 = as stored", lo=0, hi=4096, conditional=True)


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix. ``replace`` derives another (e.g. the dense SNN baseline)."""

    method: str = knob("binw-slt", "method preset (`sjlt methods`) or NEURON/WEIGHTS/PRUNER")
    sparsity: float = knob(0.5, "target sparsity: the fraction of weights REMOVED", lo=0.0, hi=1.0,
                           hi_open=True, conditional=True)
    seed: int = knob(0, "seed of the weight and score draws, data order and augmentation", lo=0)
    energy_model: str = knob("horowitz45", "energy cost model (`sjlt plugins`)")
    model: ModelSpec = field(default_factory=ModelSpec)
    recipe: Recipe = field(default_factory=Recipe)
    data: DataSpec = field(default_factory=DataSpec)

    def replace(self, **changes: Any) -> Cell:
        """A copy with ``changes``: top-level fields, section objects, or any leaf field name
        (``tau=1.5``) or dotted key (``**{"model.tau": 1.5}``)."""
        return self.with_values(changes)

    def with_values(self, values: dict[str, Any], *, parse: bool = False) -> Cell:
        """Apply ``{key: value}`` (dotted, section or leaf keys); ``parse`` converts text values.

        A bad key, type or range is one :class:`UsageError` naming the key, the value and
        the valid keys or range.
        """
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, value in values.items():
            if key in SECTIONS and isinstance(value, (ModelSpec, Recipe, DataSpec)):
                top[key] = value
                continue
            k = _KNOBS.get(_LEAF.get(key, key))
            if k is None:
                raise UsageError(f"unknown cell key {key!r}; valid: {', '.join(_KNOBS)}")
            value = k.parse(value) if parse and isinstance(value, str) else k.check(value)
            if k.section:
                nested[k.section][k.name] = value
            else:
                top[k.name] = value
        for section, changes in nested.items():
            if changes:
                top[section] = dataclasses.replace(top.get(section, getattr(self, section)), **changes)
        return dataclasses.replace(self, **top)

    def get(self, key: str) -> Any:
        """The value of a dotted or leaf key."""
        k = _KNOBS.get(_LEAF.get(key, key))
        if k is None:
            raise UsageError(f"unknown cell key {key!r}; valid: {', '.join(_KNOBS)}")
        return getattr(getattr(self, k.section), k.name) if k.section else getattr(self, k.name)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict of every field (what ``sjlt config show --json`` prints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        """From :meth:`to_dict`'s nested form, a partial nested dict, or a flat dict by leaf
        name (results written before schema 2: their normalized ``None`` means default). A
        description without ``recipe.val_fraction`` was written before the validation split
        existed, so it reads as 0 (no split), keeping old rows' hashes and pairs intact; one
        without ``recipe.memory_format`` ran NCHW (contiguous)."""
        values: dict[str, Any] = {}
        for key, value in (d or {}).items():
            if key in SECTIONS and isinstance(value, dict):
                values.update({f"{key}.{k}": v for k, v in value.items() if f"{key}.{k}" in _KNOBS})
            elif _LEAF.get(key, key) in _KNOBS:
                k = _KNOBS[_LEAF.get(key, key)]
                if value is None and k.default is not None:
                    continue  # schema-1 normalization blanked fields the method ignores
                if value == "" and k.choices:
                    continue
                values[k.key] = value
        # a stored description without the field predates the validation split: it had none
        values.setdefault("recipe.val_fraction", 0.0)
        values.setdefault("recipe.memory_format", "contiguous")  # runs before the field were NCHW
        values.setdefault("recipe.denormals", "keep")  # runs before the field kept denormals
        values.setdefault("model.lif_impl", "fast")  # and used the fused kernel
        return cls().with_values(values)


@dataclass(frozen=True)
class Knob:
    """One field of a cell: dotted key, type, default, help and valid range."""

    key: str
    section: str | None
    name: str
    type: type
    optional: bool
    default: Any
    help: str
    lo: float | None
    hi: float | None
    lo_open: bool
    hi_open: bool
    choices: tuple | None
    conditional: bool
    keyed_when_set: bool = False

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "true or false"
        if self.lo is not None or self.hi is not None:
            lo = "-inf" if self.lo is None else f"{self.lo:g}"
            hi = "inf" if self.hi is None else f"{self.hi:g}"
            return f"{self.type.__name__} in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        return self.type.__name__

    def parse(self, text: str) -> Any:
        """Text (from ``--set``) -> a checked value of this field's type."""
        t = text.strip()
        if self.optional and t.lower() in ("none", "null", ""):
            return None
        if self.type is bool:
            low = t.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise UsageError(f"{self.key}={text!r} is not a boolean; valid: true, false")
        try:
            value = self.type(t) if self.type is not int else int(t, 10)
        except ValueError:
            if self.type is int and _is_integral_float(t):
                value = int(float(t))
            else:
                raise UsageError(f"{self.key}={text!r} is not a valid {self.type.__name__}; "
                                 f"valid: {self.describe_range()}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """A value of the right type within range, or one UsageError naming key, value and range."""
        if value is None:
            if self.optional:
                return None
            raise UsageError(f"{self.key}=None is not allowed; valid: {self.describe_range()}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise UsageError(f"{self.key}={value!r} is not a boolean; valid: true, false")
        elif self.type is int:
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
                raise UsageError(f"{self.key}={value!r} is not an integer; valid: {self.describe_range()}")
            value = int(value)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{self.key}={value!r} is not a finite number; valid: {self.describe_range()}")
            value = float(value)
        elif not isinstance(value, str):
            raise UsageError(f"{self.key}={value!r} is not a string; valid: {self.describe_range()}")
        if self.choices and value not in self.choices:
            raise UsageError(f"{self.key}={value!r} is not valid; valid: {self.describe_range()}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
            above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
            if below or above:
                raise UsageError(f"{self.key}={value!r} is out of range; valid: {self.describe_range()}")
        return value


def _is_integral_float(t: str) -> bool:
    try:
        return float(t).is_integer()
    except ValueError:
        return False


def _collect() -> dict[str, Knob]:
    out: dict[str, Knob] = {}

    def add(cls, section: str | None) -> None:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in SECTIONS:
                continue
            hint = hints[f.name]
            args = getattr(hint, "__args__", ())
            optional = type(None) in args
            base = next((a for a in args if a is not type(None)), hint) if args else hint
            key = f"{section}.{f.name}" if section else f.name
            m = f.metadata
            out[key] = Knob(key, section, f.name, base, optional, f.default, m["help"], m["lo"], m["hi"],
                            m["lo_open"], m["hi_open"], m["choices"], m["conditional"],
                            m["keyed_when_set"])

    add(Cell, None)
    for section, cls in (("model", ModelSpec), ("recipe", Recipe), ("data", DataSpec)):
        add(cls, section)
    return out


_KNOBS: dict[str, Knob] = _collect()
_LEAF: dict[str, str] = {k.name: k.key for k in _KNOBS.values()}
assert len(_LEAF) == len(_KNOBS), "cell leaf names must be unique"


def knobs() -> dict[str, Knob]:
    """Every cell field by dotted key, in definition order."""
    return dict(_KNOBS)


def flatten(d: dict[str, Any]) -> dict[str, Any]:
    """Nested cell dict -> ``{leaf name: value}`` (a flat dict passes through)."""
    out: dict[str, Any] = {}
    for key, value in (d or {}).items():
        if key in SECTIONS and isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


def parse_assignment(text: str) -> tuple[str, str]:
    """'model.tau=1.5' -> ('model.tau', '1.5'); a malformed one is one clear error."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--set {text!r} must look like KEY=VALUE (e.g. model.tau=1.5); "
                         f"valid keys: {', '.join(_KNOBS)}")
    return key, value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML file of cell fields (``[model] tau = 1.5`` or dotted keys) -> ``{dotted key: value}``."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file {str(p)!r} does not exist or is not a file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            full = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(full + ".", value)
            else:
                out[full] = value

    walk("", data)
    for key in out:
        if _LEAF.get(key, key) not in _KNOBS:
            raise UsageError(f"config file {str(p)!r}: unknown key {key!r}; valid: {', '.join(_KNOBS)}")
    return out


def _json_default(obj: Any) -> Any:
    """Encode the non-JSON values a key, config or metrics dict tends to carry (anything else: TypeError)."""
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):  # numpy scalars/arrays, torch tensors
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} value {obj!r} as JSON")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the same dict always gives the same text (the one encoding of
    a cell's key, and of everything the results store writes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def cell_hash(key: dict[str, Any]) -> str:
    """Stable cell id: the first 16 hex digits of sha256 of the key's canonical JSON (the results
    store's ``config_hash``)."""
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()[:16]
