"""The root module shared by every architecture: direct encoding and time averaging.

An ANN (``timesteps=None``) runs ``encoder`` then ``body`` on ``[N, C, H, W]``.
A spiking net runs the ``encoder`` (first conv + BN, real-valued input) once on the
static image, repeats its output T times and runs ``body`` in step mode 'm' on
``[T, N, ...]``; the logits are averaged over time. Running the first conv once is
exact under direct encoding (the same image at every step) and saves (T-1) convs.
"""

from __future__ import annotations

import torch
from torch import nn

from .._sj import set_step_mode

__all__ = ["Network", "scaled"]


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


class Network(nn.Module):
    #: energy hint (read by ``spikingjelly_lt.energy``): the layers under these submodules
    #: run once per image on the static image, so they cost MACs once, not T times.
    energy_static: tuple[str, ...] = ("encoder",)

    def __init__(self, encoder: nn.Module, body: nn.Module, timesteps: int | None):
        super().__init__()
        self.encoder = encoder
        self.body = body
        self.timesteps = int(timesteps) if timesteps else None
        set_step_mode(self.encoder, "s")
        set_step_mode(self.body, "m" if self.timesteps else "s")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if self.timesteps is None:
            return self.body(h)
        h = h.unsqueeze(0).expand(self.timesteps, *h.shape)
        return self.body(h).mean(0)
