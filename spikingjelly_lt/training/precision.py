"""Numeric precision and memory format of training and evaluation (``recipe.precision``).

``fp32`` runs everything in float32. ``bf16`` runs convolutions and linear layers under
autocast in bfloat16 (on the CPU: oneDNN with AVX512-BF16 / AMX-BF16; on CUDA: bf16, or
fp16 with a gradient scaler where the GPU has no bf16). What stays float32, and why:

- parameters, optimizer state and updates (autocast casts a copy per forward);
- the LIF membrane, the charge and the threshold test (:func:`~spikingjelly_lt.neuron.fast_lif.membrane_dtype`):
  a membrane rounded to 8 bits would flip spikes near the threshold; spikes leave the
  neuron in bf16, exact for {0, 1};
- BatchNorm statistics and affine parameters (bf16 inputs, float32 accumulation and
  running buffers, as autocast leaves ``batch_norm``);
- the logits' loss (computed on float32 logits) and its gradient entry;
- the surrogate gradient and BPTT recurrence through the membrane.

On a CPU without native bf16 torch would emulate it, slower than float32: asking for
bf16 there is a :class:`~spikingjelly_lt.errors.UsageError`, never a silent slow path.

On CUDA, ``fp32`` means float32: TF32 (cuDNN's default for convolutions) is switched off,
so a GPU fp32 row computes what a CPU fp32 row computes and a ticket reloads to the same
accuracy. ``tf32`` (CUDA only) allows TF32 for matmuls and convolutions; ``fp16`` (CUDA
only) autocasts to float16 with a gradient scaler, as ``bf16`` does on a GPU without
native bf16. :meth:`Precision.apply` sets the switches; :meth:`Precision.describe` is what
each row's environment records.
``model.memory_format`` (channels_last by default) decides the layout of every 4-D tensor.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import UsageError
from ..hardware import bf16_supported, cpu_info

__all__ = ["PRECISIONS", "MEMORY_FORMATS", "Precision", "precision_for"]

PRECISIONS = ("fp32", "bf16", "fp16", "tf32")
_CUDA_ONLY = ("fp16", "tf32")
MEMORY_FORMATS = ("channels_last", "contiguous")


@dataclass(frozen=True)
class Precision:
    """How one run computes: autocast dtype (None: fp32), gradient scaling, tensor layout."""

    name: str
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    @property
    def tf32(self) -> bool:
        """Whether TF32 matmuls / convolutions are allowed (CUDA ``tf32`` only)."""
        return self.device.type == "cuda" and self.name == "tf32"

    def apply(self) -> None:
        """Set the process-wide switches this precision needs (TF32 on CUDA); idempotent.

        Through torch's fp32_precision API ("ieee" / "tf32") for cuBLAS and cuDNN (conv and
        RNN alike, so the legacy ``allow_tf32`` flags read consistently too).
        """
        if self.device.type == "cuda":
            mode = "tf32" if self.tf32 else "ieee"
            torch.backends.cuda.matmul.fp32_precision = mode
            torch.backends.cudnn.conv.fp32_precision = mode
            torch.backends.cudnn.rnn.fp32_precision = mode

    def describe(self) -> dict:
        """What a results row records of how it computed (the layout is the execution path's record)."""
        return {"precision": self.name, "autocast_dtype": None if self.dtype is None else str(self.dtype).replace("torch.", ""),
                "tf32": self.tf32, "grad_scaler": self.dtype == torch.float16}

    def autocast(self):
        """The forward's autocast context (a no-op in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self):
        """A gradient scaler for fp16 (CUDA without bf16), else None."""
        if self.dtype == torch.float16:
            return torch.amp.GradScaler(self.device.type)
        return None

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` with its 4-D parameters in this layout (in place)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device in this layout (images [N, C, H, W]; other shapes as they are)."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def precision_for(name: str, device: str | torch.device = "cpu", memory_format: str = "channels_last") -> Precision:
    """Check ``name`` against what ``device`` can run and describe the run; UsageError if it cannot."""
    device = torch.device(device)
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    if memory_format == "auto":  # the measured choice is the trainer's (training/execpath.py); alone: the default
        memory_format = "channels_last"
    if memory_format not in MEMORY_FORMATS:
        raise UsageError(f"unknown memory format {memory_format!r}; valid: {', '.join(MEMORY_FORMATS)}")
    dtype = None
    if name in _CUDA_ONLY and device.type != "cuda":
        raise UsageError(f"precision {name} runs on CUDA only (device {device}); valid here: fp32, bf16")
    if name == "fp16":
        dtype = torch.float16
    if name == "bf16":
        if device.type == "cuda":
            dtype = torch.bfloat16 if bf16_supported(device) else torch.float16
        elif bf16_supported(device):
            dtype = torch.bfloat16
        else:
            info = cpu_info()
            raise UsageError(
                f"precision bf16 needs a CPU with avx512_bf16 or amx_bf16; {info.model} has "
                f"{', '.join(info.flags) or 'neither'}: use --set recipe.precision=fp32")
    return Precision(name, device, dtype, memory_format == "channels_last")
