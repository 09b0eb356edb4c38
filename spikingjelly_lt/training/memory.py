"""How much memory a training step will take, known before the first step.

A cell with a large ``model.timesteps`` or batch can grow past the machine's memory within
seconds of its first step (and be OOM-killed, losing nothing recorded but telling nothing
either). :func:`estimate_step_bytes` runs the model's forward once on the ``meta`` device
(shapes only, no data, no compute): the activations a training step keeps for backward
are about the sum of every layer's output, and backward adds gradients of the same size.
:func:`check_fits` compares that with what the device has free and refuses in one line.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

__all__ = ["estimate_step_bytes", "available_bytes", "check_fits", "STEP_FACTOR"]

log = logging.getLogger("spikingjelly_lt")

STEP_FACTOR = 2.0  # activations kept for backward + their gradients during backward


def estimate_step_bytes(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    """Bytes of one training step's activations for a batch of ``input_shape`` (an estimate).

    The sum of every leaf module's outputs in one forward on the meta device, times
    :data:`STEP_FACTOR`, plus the parameters, their gradients and two optimizer moments.
    """
    meta = copy.deepcopy(model).to("meta")
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    steps = getattr(model, "timesteps", None)
    if isinstance(steps, int) and steps > 2:  # outputs grow linearly in T: two short forwards, extrapolated
        meta.timesteps = 1
        one = _forward_bytes(meta, input_shape, dtype)
        meta.timesteps = 2
        two = _forward_bytes(meta, input_shape, dtype)
        total = one + (two - one) * (steps - 1)
    else:
        total = _forward_bytes(meta, input_shape, dtype)
    return int(total * STEP_FACTOR + 4 * params)


def _forward_bytes(meta: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """The summed output bytes of every leaf module in one forward of ``meta``."""
    from .._sj import reset_net

    total = 0

    def hook(module, args, out):
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta.train()
            meta(torch.empty(input_shape, dtype=dtype, device="meta"))
    finally:
        for h in handles:
            h.remove()
        reset_net(meta)
    return total


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: the GPU's free memory, or the host's MemAvailable (None if unknown)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no such device in this process
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(model: nn.Module, input_shape: tuple[int, ...], device: torch.device, *,
               batch_size: int, timesteps: int | None) -> tuple[int | None, int | None, str | None]:
    """``(estimate, available, refusal)``: ``refusal`` is a one-line reason when the step cannot fit."""
    try:
        need = estimate_step_bytes(model, input_shape)
    except Exception as exc:  # noqa: BLE001 - a model the meta device cannot run: no estimate, no refusal
        log.debug("no memory estimate (%s)", exc)
        return None, available_bytes(device), None
    have = available_bytes(device)
    log.debug("memory estimate of one training step: %.2f GB (%s GB available)", need / 1e9,
              "?" if have is None else f"{have / 1e9:.2f}")
    if have is None or need <= have:
        return need, have, None
    t = f", model.timesteps {timesteps}" if timesteps else ""
    return need, have, (f"a training step needs about {need / 1e9:.1f} GB (batch {batch_size}{t}) but {device} has "
                        f"{have / 1e9:.1f} GB available; lower recipe.batch_size, model.timesteps or model.width")
