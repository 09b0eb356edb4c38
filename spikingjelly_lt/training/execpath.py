"""The execution path of a training run, chosen on this machine by measurement.

Three choices change a CPU training step's speed and none is numerics-neutral: the
memory format of images and conv weights (channels_last or NCHW), the LIF implementation
(the fused C++ kernel or the same op in torch ops) and flushing denormal floats to zero.
Which is fastest depends on the CPU (an Intel Xeon with AMX, an AMD EPYC and an Intel
Xeon with AVX512-BF16 but no AMX disagree, see docs/performance.md), so no flag rule picks
them. A cell field left at ``auto`` (``recipe.memory_format``, ``model.lif_impl``,
``recipe.denormals``) is decided here, before the first timed step:

1. a run resumed from a checkpoint continues on the path it started with;
2. else the cache (``~/.cache/spikingjelly_lt/exec_paths.json``; ``SJLT_CACHE_DIR``) answers
   for this CPU model and flags, torch version, threads, method, arch, width, batch, T,
   input shape and precision;
3. else a few train steps of each candidate are timed in interleaved rounds: the default
   (channels_last, fused kernel, denormals kept), each single change of an ``auto`` axis,
   then the combination of the winners; a change is kept only when it is at least
   :data:`MIN_GAIN` faster. The answer is cached.

The policy (``auto`` or a fixed choice) is the cell's identity; the concrete path is
recorded in every row (``metrics.exec_path``) and in the checkpoint. Under
``recipe.precision=bf16`` on a CPU the fp32 step is timed too, and a one-line warning gives
the ratio where bf16 is the slower one. ``SJLT_EXEC_PATH=default`` skips measuring (``auto``
is the default path), as the test suite does for reproducible numbers.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

__all__ = ["ExecPath", "DEFAULT_PATH", "resolve_exec_path", "tune", "measure", "cache_file", "MIN_GAIN"]

log = logging.getLogger("spikingjelly_lt")

MIN_GAIN = 0.03  # a candidate must be this much faster than the default to be chosen
ROUNDS = 2  # interleaved timed rounds per candidate (after one warm-up step each)
TUNE_BATCH = 32  # the timed steps use at most this batch (the ranking, not the absolute time, matters)
CACHE_VERSION = 1


@dataclass(frozen=True)
class ExecPath:
    """A concrete execution path and where it came from."""

    memory_format: str = "channels_last"  # channels_last | contiguous
    lif: str | None = "fast"  # fast (C++ kernel) | torch | spikingjelly | None (no LIF in the model)
    denormals: str = "keep"  # keep | flush
    source: str = "default"  # fixed | default | cache | tuned | checkpoint
    tune_seconds: float = 0.0
    step_ms: dict = field(default_factory=dict)  # candidate -> median train step (ms), when measured
    bf16_vs_fp32: float | None = None  # fp32 step time / bf16 step time (< 1: bf16 is slower here)

    def choice(self) -> tuple[str, str | None, str]:
        return (self.memory_format, self.lif, self.denormals)

    def label(self) -> str:
        return "/".join(v for v in self.choice() if v)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExecPath:
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in keys})

    def apply(self, model: nn.Module) -> nn.Module:
        """Set the LIF kernel choice on ``model``'s fast LIF nodes and the process's denormal mode."""
        from ..neuron.fast_lif import FastLIFNode

        for m in model.modules():
            if isinstance(m, FastLIFNode) and self.lif in ("fast", "torch"):
                m.native = self.lif == "fast"
        torch.set_flush_denormal(self.denormals == "flush")
        return model


DEFAULT_PATH = ExecPath()


def cache_file() -> Path:
    root = os.environ.get("SJLT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikingjelly_lt"
    return Path(root) / "exec_paths.json"


def _axes(cell, model: nn.Module, device: torch.device) -> dict[str, list[str | None]]:
    """The values each axis may take for this cell on this device (one value: fixed)."""
    from ..neuron.fast_lif import FastLIFNode

    c = cell.cell
    mf = c.recipe.memory_format
    has_fast = any(isinstance(m, FastLIFNode) for m in model.modules())
    lif = c.model.lif_impl if has_fast else ("spikingjelly" if c.model.lif_impl == "spikingjelly" else None)
    den = c.recipe.denormals
    if device.type != "cpu":  # the native LIF kernel and the denormal flag are CPU things
        return {"memory_format": ["channels_last" if mf == "auto" else mf], "lif": ["torch" if has_fast else lif],
                "denormals": ["keep"]}
    return {
        "memory_format": ["channels_last", "contiguous"] if mf == "auto" else [mf],
        "lif": ["fast", "torch"] if (has_fast and lif == "auto") else [lif],
        "denormals": ["keep", "flush"] if den == "auto" else [den],
    }


def _cache_key(cell, input_shape: tuple[int, ...], device: torch.device, axes: dict) -> str:
    from ..hardware import cpu_info

    c = cell.cell
    info = cpu_info()
    return json.dumps({"v": CACHE_VERSION, "cpu": info.model, "flags": list(info.flags), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "device": device.type, "method": c.method,
                       "arch": c.model.arch, "width": c.model.width, "T": c.model.timesteps if cell.spiking else None,
                       "input": list(input_shape), "precision": c.recipe.precision, "axes": axes}, sort_keys=True)


def _read_cache() -> dict:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, path: ExecPath) -> None:
    f = cache_file()
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = {**path.to_dict(), "source": "tuned", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, f)
    except OSError as exc:  # a read-only home: tuned again next time
        log.warning("cannot cache the execution path in %s (%s)", f, exc.strerror or exc)


def _step_fn(cell, model: nn.Module, choice: tuple, precision: str, input_shape: tuple[int, ...],
             device: torch.device):
    """A closure running one train step of a copy of ``model`` on ``choice``'s path."""
    from .._sj import reset_net
    from .precision import precision_for

    mf, lif, den = choice
    prec = precision_for(precision, device, mf)
    m = prec.model(copy.deepcopy(model))
    ExecPath(mf, lif, den).apply(m)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.0, momentum=0.9)  # lr 0: the copy's weights never move
    gen = torch.Generator().manual_seed(0)
    x = prec.input(torch.randn(input_shape, generator=gen))
    y = torch.randint(0, 2, (input_shape[0],), generator=gen).to(device)  # valid for any classifier
    spiking = cell.spiking

    from .trainer import train_step  # the trainer's own step (imported here: the trainer imports this module)

    def step() -> float:
        torch.set_flush_denormal(den == "flush")
        t0 = time.perf_counter()
        m.train()
        train_step(m, x, y, opt, prec)
        if spiking:
            reset_net(m)
        return time.perf_counter() - t0

    return step


def budget_s() -> float:
    """Seconds the measuring may take per cell shape (``SJLT_TUNE_BUDGET_S``, default 30): past it,
    no new round starts and the choice is made from the rounds done."""
    try:
        return max(1.0, float(os.environ.get("SJLT_TUNE_BUDGET_S", "30")))
    except ValueError:
        return 30.0


def _time(steps: dict, rounds: int, deadline: float | None = None) -> dict:
    """Median seconds per step of each closure, over interleaved rounds after one warm-up step each
    (at least one timed round; no round starts after ``deadline``)."""
    times: dict = {k: [] for k in steps}
    for r in range(rounds + 1):
        if r > 1 and deadline is not None and time.perf_counter() > deadline:
            break
        for k, fn in steps.items():
            dt = fn()
            if r:
                times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}


def tune(cell, model: nn.Module, input_shape: tuple[int, ...], device: torch.device, *,
         rounds: int = ROUNDS) -> ExecPath:
    """Time the candidate paths of ``cell`` (its ``auto`` axes) and return the fastest."""
    axes = _axes(cell, model, device)
    default = tuple(v[0] for v in axes.values())
    precision = cell.cell.recipe.precision
    input_shape = (min(input_shape[0], TUNE_BATCH), *input_shape[1:])
    t0 = time.perf_counter()
    deadline = t0 + budget_s()
    before = torch.is_flush_denormal() if hasattr(torch, "is_flush_denormal") else False
    try:
        singles = [default]
        for i, values in enumerate(axes.values()):
            for v in values[1:]:
                singles.append(tuple(v if j == i else d for j, d in enumerate(default)))
        steps = {c: _step_fn(cell, model, c, precision, input_shape, device) for c in singles}
        bf16_key = None
        if precision == "bf16" and device.type == "cpu":
            bf16_key = ("fp32",)
            steps[bf16_key] = _step_fn(cell, model, default, "fp32", input_shape, device)
        med = _time(steps, rounds, deadline) if len(steps) > 1 else {default: 0.0}
        base = med[default]
        winners = [c for c in singles[1:] if med[c] < base * (1 - MIN_GAIN)]
        best = min(winners, key=lambda c: med[c]) if winners else default
        if len(winners) > 1 and time.perf_counter() < deadline:  # the winners together, against the best single
            combo = tuple(next((w[i] for w in winners if w[i] != default[i]), default[i]) for i in range(3))
            if combo not in med:
                extra = _time({best: steps[best], combo: _step_fn(cell, model, combo, precision, input_shape, device)},
                              rounds, deadline)
                med[combo] = extra[combo] * med[best] / extra[best]  # on the first rounds' scale
                if extra[combo] < extra[best] * (1 - MIN_GAIN):
                    best = combo
        ratio = (med[bf16_key] / base) if bf16_key else None
    finally:
        torch.set_flush_denormal(before)
    names = {c: "/".join(v for v in c if v) for c in med if c != bf16_key}
    return ExecPath(*best, source="tuned", tune_seconds=round(time.perf_counter() - t0, 3),
                    step_ms={names[c]: round(1000 * t, 3) for c, t in med.items() if c != bf16_key},
                    bf16_vs_fp32=None if ratio is None else round(ratio, 4))


def measure(cell, model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> ExecPath:
    """:func:`tune` this cell shape now and cache the answer (what ``sjlt tune`` runs)."""
    path = tune(cell, model, input_shape, device)
    _write_cache(_cache_key(cell, input_shape, device, _axes(cell, model, device)), path)
    return path


def resolve_exec_path(cell, model: nn.Module, input_shape: tuple[int, ...], device: torch.device, *,
                      resumed: dict | None = None) -> ExecPath:
    """The path this run takes (see the module docstring), applied to ``model``'s LIF nodes and
    the process's denormal mode; logs where it came from."""
    from ..hardware import cpu_info

    axes = _axes(cell, model, device)
    if resumed:
        path = replace(ExecPath.from_dict(resumed), source="checkpoint", tune_seconds=0.0)
    elif all(len(v) == 1 for v in axes.values()) and not (cell.cell.recipe.precision == "bf16" and
                                                          device.type == "cpu" and _auto(cell)):
        path = ExecPath(*(v[0] for v in axes.values()), source="fixed" if not _auto(cell) else "default")
    elif os.environ.get("SJLT_EXEC_PATH") == "default":
        path = ExecPath(*(v[0] for v in axes.values()), source="default")
    else:
        hit = _read_cache().get(_cache_key(cell, input_shape, device, axes))
        if hit:
            path = replace(ExecPath.from_dict(hit), source="cache", tune_seconds=0.0)
        else:
            log.info("measuring the execution path of %s on this CPU (a few train steps per candidate; cached)",
                     cell.cell.method)
            path = measure(cell, model, input_shape, device)
        log.info("execution path %s (%s%s)", path.label(), path.source,
                 f", {path.tune_seconds:.1f} s" if path.source == "tuned" else "")
    if path.bf16_vs_fp32 is not None and path.bf16_vs_fp32 < 1.0:
        info = cpu_info()
        log.warning("recipe.precision=bf16 is slower than fp32 on this CPU (%s; %s): the bf16 step runs at %.2fx "
                    "the fp32 step's speed; --set recipe.precision=fp32 is faster here", info.model,
                    ", ".join(info.flags) or "no bf16 flags", path.bf16_vs_fp32)
    path.apply(model)
    return path


def _auto(cell) -> bool:
    c = cell.cell
    return "auto" in (c.recipe.memory_format, c.model.lif_impl, c.recipe.denormals)
