"""What the CPU can do for an exact integer product, and which engine ``auto`` picks.

Flags come from ``/proc/cpuinfo`` (Linux) and ``torch.backends.cpu.get_cpu_capability()``.
Every engine here is exact for spike-fed layers (see :mod:`.engine`); ``auto`` picks the
fastest one the CPU runs natively:

=========  ====================================================================
engine     product
=========  ====================================================================
int8       oneDNN u8 x s8 -> int32 convolution / matmul (AMX-INT8, AVX512-VNNI,
           AVX-VNNI; plain AVX2/AVX-512 without VNNI still exact, slower)
bf16       oneDNN bf16 convolution, input channels split so that every returned
           partial sum stays within 256 (exact in bf16), groups summed in fp32
fp32       plain fp32 convolution of {0,1} x {-1,0,1} (exact below 2^24)
=========  ====================================================================
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UsageError

__all__ = ["ENGINES", "CpuInfo", "cpu_info", "choose_engine"]

ENGINES = ("auto", "int8", "bf16", "fp32")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model, the flags that matter here and torch's own capability string."""

    model: str
    flags: tuple[str, ...]
    torch_capability: str
    mkldnn: bool
    threads: int = field(default_factory=torch.get_num_threads)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def to_dict(self) -> dict:
        return {"model": self.model, "flags": list(self.flags), "torch_capability": self.torch_capability,
                "mkldnn": self.mkldnn, "threads": torch.get_num_threads()}


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model or platform.processor() or platform.machine(), flags


def cpu_info() -> CpuInfo:
    """Model name, the flags in :data:`REPORTED_FLAGS` it has, torch's capability, oneDNN."""
    model, flags = _proc_cpuinfo()
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        cap = "unknown"
    return CpuInfo(model=model, flags=tuple(f for f in REPORTED_FLAGS if f in flags), torch_capability=cap,
                   mkldnn=bool(torch.backends.mkldnn.is_available()))


def _int8_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def choose_engine(engine: str = "auto", info: CpuInfo | None = None) -> str:
    """The engine to run: ``engine`` itself if it can run here, the fastest one for ``auto``."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    info = info or cpu_info()
    if engine == "int8" and not _int8_available():
        raise UsageError("engine int8 needs torch built with oneDNN (torch.ops.onednn.qconv2d_pointwise)")
    if engine == "bf16" and not info.mkldnn:
        raise UsageError("engine bf16 needs torch built with oneDNN")
    if engine != "auto":
        return engine
    if _int8_available() and any(info.has(f) for f in ("amx_int8", "avx512_vnni", "avx_vnni")):
        return "int8"
    if info.mkldnn and any(info.has(f) for f in ("amx_bf16", "avx512_bf16")):
        return "bf16"
    if _int8_available() and info.torch_capability.startswith("AVX512"):
        return "int8"
    return "fp32"
