"""What the CPU can do for an exact integer product, and which engine ``auto`` picks.

Flags come from ``/proc/cpuinfo`` (Linux) and ``torch.backends.cpu.get_cpu_capability()``.
Every engine here is exact for spike-fed layers (see :mod:`.compiled`); ``auto`` picks the
fastest one the CPU runs natively:

=========  ====================================================================
engine     product
=========  ====================================================================
int8       oneDNN u8 x s8 -> int32 convolution / matmul; only with AMX-INT8,
           AVX512-VNNI or AVX-VNNI (without them, on an AVX2-only AMD EPYC,
           oneDNN's int8 sums came out wrong by 1-6 on some calls of the same
           input, so it is refused there)
bf16       oneDNN bf16 convolution, input channels split so that every returned
           partial sum stays within 256 (exact in bf16), groups summed in fp32
fp16       fp16 convolution, input channels split so that every partial sum stays
           within 2048 (exact in fp16 whatever the accumulator); CUDA's default,
           exact but slow on most CPUs (never ``auto`` there)
fp32       plain fp32 convolution of {0,1} x {-1,0,1} (exact below 2^24)
=========  ====================================================================

On CUDA the engines are fp16 (``auto``), bf16 (GPUs with bf16) and fp32; int8 is
oneDNN's and runs on the CPU only.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..hardware import CpuInfo, cpu_info

__all__ = ["ENGINES", "CUDA_ENGINES", "INT8_FLAGS", "CpuInfo", "cpu_info", "choose_engine", "int8_exact"]

ENGINES = ("auto", "int8", "bf16", "fp16", "fp32")
CUDA_ENGINES = ("auto", "fp16", "bf16", "fp32")


#: the CPU flags under which oneDNN's int8 product is a dot-product instruction, exact and tested
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


def _int8_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def int8_exact(info: CpuInfo | None = None) -> bool:
    """Whether the int8 engine is exact on this CPU: oneDNN built in, and VNNI or AMX-INT8.

    Without them oneDNN emulates the u8 x s8 product; on an AVX2-only AMD EPYC (2026-12-06)
    its convolution and matmul returned sums off by 1-6 on some calls of one fixed input
    (a 1x1 stride-2 conv and a Linear of a residual net), so the engine is not offered there.
    """
    info = info or cpu_info()
    return _int8_available() and any(info.has(f) for f in INT8_FLAGS)


def _choose_cuda(engine: str, device: torch.device) -> str:
    if engine not in CUDA_ENGINES:
        hint = " (oneDNN's int8 runs on the CPU only)" if engine == "int8" else ""
        raise UsageError(f"engine {engine!r} does not run on {device}{hint}; valid there: {', '.join(CUDA_ENGINES)}")
    if engine == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"engine bf16 needs a GPU with bf16 ({device} has none); use fp16 or fp32")
    return "fp16" if engine == "auto" else engine


def choose_engine(engine: str = "auto", info: CpuInfo | None = None, device: str | torch.device = "cpu") -> str:
    """The engine to run on ``device``: ``engine`` itself if it can run there, the fastest for ``auto``."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    device = torch.device(device)
    if device.type == "cuda":
        return _choose_cuda(engine, device)
    if device.type != "cpu":
        raise UsageError(f"the integer engine runs on cpu or cuda, not {device}")
    info = info or cpu_info()
    if engine == "int8" and not _int8_available():
        raise UsageError("engine int8 needs torch built with oneDNN (torch.ops.onednn.qconv2d_pointwise)")
    if engine == "int8" and not int8_exact(info):
        raise UsageError(f"engine int8 is not exact on this CPU ({info.model}: no {', '.join(INT8_FLAGS)}); "
                         "use --engine fp32 or bf16")
    if engine == "bf16" and not info.mkldnn:
        raise UsageError("engine bf16 needs torch built with oneDNN")
    if engine != "auto":
        return engine
    if int8_exact(info):
        return "int8"
    if info.mkldnn and any(info.has(f) for f in ("amx_bf16", "avx512_bf16")):
        return "bf16"
    return "fp32"
