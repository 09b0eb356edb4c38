"""What this machine is: the CPU model and the flags that pick a fast path, and process tuning.

Every speed figure names the CPU it ran on (``cpu_info().to_dict()``), and code picks a
path by what the CPU has (:func:`bf16_supported`), never by what one machine had.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["REPORTED_FLAGS", "CpuInfo", "cpu_info", "bf16_supported", "keep_freed_memory"]

log = logging.getLogger("spikingjelly_lt")

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


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 compute runs natively here (CPU: AVX512-BF16 or AMX-BF16; CUDA: compute 8.0+).

    Without it torch still accepts bf16 on a CPU but emulates it, slower than fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        # including_emulation=False: a V100 / T4 "supports" bf16 only by emulation (slower than fp16)
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    info = cpu_info()
    return info.mkldnn and (info.has("avx512_bf16") or info.has("amx_bf16"))


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS (True if applied).

    Every large tensor (a conv output, a LIF buffer) is otherwise its own ``mmap``: it is
    unmapped when freed and its pages fault in again, zeroed, at the next step. A spiking
    train step allocates several GB per step this way; keeping the heap saved 1.5-1.8x of
    the fp32 ResNet-19 step on a 2-core Xeon (docs/performance.md). Resident memory stays
    at the run's peak. A no-op (False) off glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        ok = False
    log.debug("keep freed memory (glibc mallopt): %s", ok)
    return ok
