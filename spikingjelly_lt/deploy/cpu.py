"""What the CPU can do for an exact integer product, and which engine ``auto`` picks.

Flags come from ``/proc/cpuinfo`` (Linux) and ``torch.backends.cpu.get_cpu_capability()``.
Every engine here is exact for spike-fed layers (see :mod:`.compiled`); ``auto`` picks the
fastest one the CPU runs natively:

=========  ====================================================================
engine     product
=========  ====================================================================
int8       oneDNN u8 x s8 -> int32 convolution / matmul (AMX-INT8, AVX512-VNNI,
           AVX-VNNI; plain AVX2/AVX-512 without VNNI still exact, slower)
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

__all__ = ["ENGINES", "CUDA_ENGINES", "CpuInfo", "cpu_info", "choose_engine"]

ENGINES = ("auto", "int8", "bf16", "fp16", "fp32")
CUDA_ENGINES = ("auto", "fp16", "bf16", "fp32")


def _int8_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.onednn, "qconv2d_pointwise")


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
