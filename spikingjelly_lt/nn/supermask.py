"""Supermask parametrizations: edge-popup (fp) and biprop / BinW-SLT (binary) weights.

The weight ``W`` stays frozen at its random init; a score tensor ``s`` of the same
shape trains. The mask ``M`` keeps the top-k of ``|s|`` (layer-wise, or over all
supermask layers with a shared :class:`GlobalTopK`).

- fp (edge-popup): ``w_eff = W * M``
- binary (biprop): ``w_eff = alpha * M * sign(W)``, ``alpha = sum(|W| M) / sum(M)``
  per layer, not differentiated.

Gradient (straight-through, both variants): ``dL/ds = (dL/dw_eff * W) * sign(s)``.

Partial freezing (:meth:`Supermask.freeze`): entries permanently pruned or kept rank
below / above every score, so the top-k runs over the free entries only; the kept count
``k`` is unchanged.

In training the mask is a function of what it depends on (the scores' values, the
sparsity, the device), computed when the weight is read: once per forward call
(multi-step inputs see one weight for all T steps), nothing kept across forwards. A
global threshold is computed once per root forward (:meth:`GlobalTopK.attach`).

In eval mode without autograd, the whole effective weight (``alpha * M * sign(W)`` or
``W * M``) is kept and reused by later forwards until something it depends on changes:
the version counter of any score tensor it reads (an optimizer step, ``load_state_dict``,
any in-place write), the frozen weight, the sparsity, the dtype or device. A write
through ``.data`` bypasses version counters: call ``model.eval()`` again (it drops the
kept weights), as after any out-of-band edit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .topk import keep_count, topk_mask

__all__ = ["Supermask", "GlobalTopK"]


class _MaskSTE(torch.autograd.Function):
    """Forward: the given 0/1 mask. Backward: identity to the (absolute) scores."""

    @staticmethod
    def forward(ctx, abs_scores, mask):
        return mask.to(abs_scores.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _BinaryMaskSTE(torch.autograd.Function):
    """Forward: ``alpha * M``. Backward: ``g * |W|`` to the (absolute) scores (biprop)."""

    @staticmethod
    def forward(ctx, abs_scores, mask, abs_weight):
        m = mask.to(abs_scores.dtype)
        alpha = (abs_weight * m).sum() / m.sum().clamp_min(1.0)
        ctx.save_for_backward(abs_weight)
        return alpha * m

    @staticmethod
    def backward(ctx, grad):
        (abs_weight,) = ctx.saved_tensors
        return grad * abs_weight, None, None


class GlobalTopK:
    """Shares one top-k threshold over the scores of several supermask layers.

    Outside a forward of the model it is attached to, every read recomputes the masks;
    during one, they are computed once and shared by all member layers.
    """

    def __init__(self, sparsity: float):
        self.sparsity = float(sparsity)
        self.members: list[Supermask] = []
        self._memo: list[torch.Tensor] | None = None
        self._in_forward = False

    def attach(self, model: nn.Module) -> None:
        """Memoize the masks for the duration of each forward call of ``model``."""
        model.register_forward_pre_hook(self._begin)
        model.register_forward_hook(self._end, always_call=True)

    def _begin(self, *_) -> None:
        self._memo, self._in_forward = None, True

    def _end(self, *_) -> None:
        self._memo, self._in_forward = None, False

    def _masks(self) -> list[torch.Tensor]:
        with torch.no_grad():
            flat = torch.cat([m.ranking().reshape(-1) for m in self.members])
            mask = topk_mask(flat, keep_count(flat.numel(), self.sparsity))
            return list(mask.split([m.scores.numel() for m in self.members]))

    def mask_for(self, member: Supermask) -> torch.Tensor:
        if self._in_forward:
            if self._memo is None:
                self._memo = self._masks()
            masks = self._memo
        else:
            masks = self._masks()
        i = next(i for i, m in enumerate(self.members) if m is member)
        return masks[i].view_as(member.scores)


class Supermask(nn.Module):
    """``torch.nn.utils.parametrize`` parametrization of a frozen weight by learned scores.

    Args:
        shape: the weight's shape (scores get the same shape).
        sparsity: fraction of weights removed, in [0, 1) (a schedule may change it).
        binary: use ``alpha * M * sign(W)`` (biprop / BinW-SLT) instead of ``W * M``.
        shared: a :class:`GlobalTopK` for one threshold over many layers (else layer-wise).
    """

    def __init__(self, shape, sparsity: float, binary: bool = False, shared: GlobalTopK | None = None):
        super().__init__()
        self.sparsity = float(sparsity)
        self.binary = bool(binary)
        self.scores = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))
        self.shared = shared
        if shared is not None:
            shared.members.append(self)
        self._kept: tuple[tuple, torch.Tensor] | None = None  # eval-mode weight and what it depends on
        self.register_buffer("frozen_pruned", None)  # partial freezing (``freeze``): never kept
        self.register_buffer("frozen_kept", None)  # always kept

    def freeze(self, pruned: torch.Tensor, kept: torch.Tensor) -> None:
        """Permanently prune the ``pruned`` entries and keep the ``kept`` ones (boolean, the
        weight's shape, disjoint); the top-k then chooses among the rest."""
        pruned, kept = pruned.bool().reshape(self.scores.shape), kept.bool().reshape(self.scores.shape)
        if bool((pruned & kept).any()):
            raise ValueError("frozen pruned and kept entries overlap")
        self.frozen_pruned, self.frozen_kept = pruned.to(self.scores.device), kept.to(self.scores.device)

    def ranking(self) -> torch.Tensor:
        """``|scores|`` with frozen-kept entries above and frozen-pruned entries below every score."""
        r = self.scores.detach().abs()
        if self.frozen_kept is not None:
            r = r.masked_fill(self.frozen_kept, float("inf")).masked_fill(self.frozen_pruned, -1.0)
        return r

    def train(self, mode: bool = True) -> Supermask:
        self._kept = None
        return super().train(mode)

    def _depends_on(self, weight: torch.Tensor) -> tuple:
        """What the effective weight is a function of, cheaply: tensors by identity and version."""
        scores = self.shared.members if self.shared is not None else (self,)
        return (tuple((m.scores.data_ptr(), m.scores._version) for m in scores),
                self.sparsity if self.shared is None else self.shared.sparsity,
                weight.data_ptr(), weight._version, weight.dtype, weight.device)

    def mask(self) -> torch.Tensor:
        """The current boolean mask: the top-k of ``|scores|`` at the current sparsity."""
        if self.shared is not None:
            return self.shared.mask_for(self)
        with torch.no_grad():
            return topk_mask(self.ranking(), keep_count(self.scores.numel(), self.sparsity))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            self._kept = None
            return self._effective(weight)
        key = self._depends_on(weight)
        if self._kept is None or self._kept[0] != key:
            self._kept = (key, self._effective(weight))
        return self._kept[1]

    def _effective(self, weight: torch.Tensor) -> torch.Tensor:
        mask = self.mask()
        abs_scores = self.scores.abs()
        if self.binary:
            return torch.sign(weight) * _BinaryMaskSTE.apply(abs_scores, mask, weight.abs())
        return weight * _MaskSTE.apply(abs_scores, mask)

    def extra_repr(self) -> str:
        scope = "global" if self.shared is not None else "layer"
        return f"sparsity={self.sparsity}, binary={self.binary}, scope={scope}"
