"""The one adapter over ``spikingjelly.activation_based.op_counter`` (its API changed
after SpikingJelly 2.0; nothing else in the package imports it).

Used as a cross-check of ``counter.py``, never on the trainer's path: op_counter
intercepts every aten op (``TorchDispatchMode``) and syncs with ``.item()`` per op.
Where its rules and ours differ:

- SynOps (spike input): op_counter counts the exact spike-triggered fan-out, so a
  spike at a padded border of a conv reaches fewer outputs; ours charges every spike
  the interior fan-out (``dense · T · r_in``). They agree for linear layers and for
  conv spikes away from the border.
- op_counter ignores weight masks (a pruned synapse still counts); ours multiply by
  the weight density.
- op_counter's MACs count a direct-encoded first conv T times and include BN
  affine MACs; ours count the static image once and only conv/linear layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["OpCounterCounts", "op_counter_counts", "op_counter_available"]


@dataclass(frozen=True)
class OpCounterCounts:
    """Totals from op_counter for one forward call (all samples, all steps)."""

    synops: int
    macs: int


def op_counter_available() -> bool:
    """Whether this SpikingJelly has the 2.0-style op_counter this adapter speaks."""
    try:
        from spikingjelly.activation_based.op_counter import (  # noqa: F401
            DispatchCounterMode,
            MACCounter,
            SynOpCounter,
        )
    except ImportError:
        return False
    return True


def op_counter_counts(module: nn.Module, inputs: Any) -> OpCounterCounts:
    """Run ``module(inputs)`` once under op_counter's SynOp and MAC counters."""
    try:
        from spikingjelly.activation_based.op_counter import (
            DispatchCounterMode,
            MACCounter,
            SynOpCounter,
        )
    except ImportError as exc:  # older or newer SpikingJelly
        raise RuntimeError(
            "spikingjelly.activation_based.op_counter with DispatchCounterMode, SynOpCounter "
            "and MACCounter (SpikingJelly 2.0) is required for the cross-check"
        ) from exc
    synop, mac = SynOpCounter(), MACCounter()
    args = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    with torch.no_grad(), DispatchCounterMode([synop, mac]):
        module(*args)
    return OpCounterCounts(synops=int(synop.get_total()), macs=int(mac.get_total()))
