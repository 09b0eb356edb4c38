"""Resident storage of ternary weights ``q`` in {-1, 0, +1}: base-3, five per byte.

3^5 = 243 <= 256, so five ternary digits fit one byte: 1.6 bits per weight, 20x
smaller than fp32 (plain 2-bit packing is exactly 16x, which one alpha per layer
and the first layer's weights then push just under a 16x target). Unpacking is
one table lookup per byte (a ``[256, 5]`` int8 table).
"""

from __future__ import annotations

import torch

__all__ = ["pack_ternary", "unpack_ternary", "PER_BYTE"]

PER_BYTE = 5
_POW = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32)


def _table() -> torch.Tensor:
    codes = torch.arange(256, dtype=torch.int32)
    digits = (codes.unsqueeze(1) // _POW) % 3  # [256, 5] in {0, 1, 2}
    return (digits - 1).to(torch.int8)


_TABLE = _table()


def pack_ternary(q: torch.Tensor) -> torch.Tensor:
    """``q`` (any shape, values in {-1, 0, 1}) -> uint8 ``[ceil(n / 5)]``."""
    flat = q.detach().reshape(-1).to(torch.int32) + 1
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > 2):
        raise ValueError("pack_ternary: values must be in {-1, 0, +1}")
    pad = (-flat.numel()) % PER_BYTE
    if pad:
        flat = torch.cat([flat, torch.ones(pad, dtype=torch.int32)])
    return (flat.view(-1, PER_BYTE) * _POW).sum(1).to(torch.uint8)


def unpack_ternary(packed: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """The int8 ``q`` of ``shape`` stored in ``packed``."""
    n = 1
    for d in shape:
        n *= int(d)
    table = _TABLE if packed.device.type == "cpu" else _table_on(packed.device)
    return table.index_select(0, packed.to(torch.int32)).reshape(-1)[:n].reshape(tuple(shape))


_TABLES: dict = {}


def _table_on(device: torch.device) -> torch.Tensor:
    """The lookup table on ``device`` (packed weights kept on a GPU unpack there)."""
    if device not in _TABLES:
        _TABLES[device] = _TABLE.to(device)
    return _TABLES[device]
