"""The one adapter over ``spikingjelly.activation_based.op_counter`` (its API changed
after SpikingJelly 2.0; nothing else in the package imports it).

Used as a cross-check of ``counter.py``, never on the trainer's path: op_counter
intercepts every aten op (``TorchDispatchMode``) and syncs with ``.item()`` per op.
Where its rules and ours differ:

- SynOps (spike input): both count the exact spike-triggered fan-out (a spike at a
  padded border reaches fewer outputs), so on a dense layer they are equal.
- op_counter ignores weight masks (a pruned synapse still counts); ours count only
  nonzero synapses, so on a pruned layer ours <= op_counter's.
- op_counter's MACs count a direct-encoded first conv T times (ours: once, rule
  ``static-mac``) and a pooled-spike FC as MACs of the pooled values (ours by default
  ACs, rule ``pooled-ac``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["OpCounterCounts", "op_counter_counts", "op_counter_layer_counts", "op_counter_available"]


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
    synop, mac = _run(module, inputs)
    return OpCounterCounts(synops=int(synop.get_total()), macs=int(mac.get_total()))


def op_counter_layer_counts(module: nn.Module, inputs: Any) -> dict[str, OpCounterCounts]:
    """Per-submodule totals of one ``module(inputs)`` call, keyed by ``named_modules`` names.

    op_counter scopes its records as ``RootClass.path``; the root itself is ``""``.
    """
    synop, mac = _run(module, inputs)
    root = type(module).__name__
    out: dict[str, OpCounterCounts] = {}
    s_counts, m_counts = synop.get_counts(), mac.get_counts()
    for scope in set(s_counts) | set(m_counts):
        if scope == "Global":
            continue
        name = "" if scope == root else scope.removeprefix(root + ".")
        out[name] = OpCounterCounts(synops=int(sum(s_counts.get(scope, {}).values())),
                                    macs=int(sum(m_counts.get(scope, {}).values())))
    return out


def _run(module: nn.Module, inputs: Any):
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
    return synop, mac
