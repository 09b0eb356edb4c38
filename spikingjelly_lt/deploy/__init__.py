"""Deploy a ticket: exact integer-arithmetic inference on the CPU and NIR export (docs/deploy.md)."""

from .cpu import ENGINES, CpuInfo, choose_engine, cpu_info
from .compiled import FIRST_LAYER, STORAGE, CompiledNet, compile_model, reference_forward, weight_bytes

__all__ = [
    "ENGINES",
    "FIRST_LAYER",
    "STORAGE",
    "CpuInfo",
    "CompiledNet",
    "choose_engine",
    "compile_model",
    "cpu_info",
    "reference_forward",
    "weight_bytes",
]
