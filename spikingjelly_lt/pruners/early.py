"""Early tickets: searches that spend less compute than full IMP (docs/design.md §2.7).

* :class:`EarlyTimePruner` (``"imp-et"``): Kim et al., "Exploring Lottery Ticket
  Hypothesis in Spiking Neural Networks", ECCV 2022, Alg. 1 (Early-Time ticket). An
  SNN's important connections show up at fewer time steps, so the IMP search runs at a
  smaller T' and only the final ticket retrains at full T. T' comes from the KL rule:
  after N epochs at full T, compare the output at each t' in {2, ..., T-1} with the
  full-T output on a fixed set of training images; normalize the KL values by the
  largest; take the smallest t' whose normalized KL is under lambda.
* :class:`EarlyBirdPruner` (``"eb"``): You et al., "Drawing Early-Bird Tickets", ICLR
  2020, as Kim et al. apply it to SNNs (unstructured global magnitude masks instead of
  You et al.'s BN channel masks). The mask at the target sparsity is drawn after every
  epoch; once consecutive masks differ by less than tau (normalized Hamming distance)
  for q epochs in a row the search stops, the mask is applied, and the ticket retrains.

Both keep their masks as :class:`~spikingjelly_lt.nn.masks.WeightMask` parametrizations
installed at ``apply`` (so the state_dict has the same keys from the start and a
checkpoint resumes), and everything a resume needs in ``self.state``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from .. import hookimpl
from .._sj import reset_net
from . import magnitude
from .base import Pruner, RoundEnd, TrainContext
from .common import check_sparsity
from .imp import IMPPruner

__all__ = ["EarlyTimePruner", "EarlyBirdPruner", "choose_timesteps", "normalized_kl", "timestep_kl",
           "early_bird_stop"]

log = logging.getLogger("spikingjelly_lt")


# -- the early-time rule (pure functions) ------------------------------------------------------


def normalized_kl(kl_by_t: dict[int, float]) -> dict[int, float]:
    """Each KL divided by the largest one (all 0 when the largest is 0: the outputs agree)."""
    top = max(kl_by_t.values(), default=0.0)
    return {t: (float(v) / top if top > 0 else 0.0) for t, v in sorted(kl_by_t.items())}


def choose_timesteps(kl_by_t: dict[int, float], lam: float, full: int | None = None) -> int:
    """Kim et al.'s T': the smallest t whose normalized KL is strictly under ``lam``.

    ``kl_by_t`` maps candidate time steps to KL(P_t || P_T); when none qualifies, when
    there are no candidates, or when every KL is 0 (the normalization is undefined: the
    output does not depend on T, as in a silent net) the answer is ``full`` (default: one
    more than the largest candidate, i.e. T when the candidates are 2..T-1).
    """
    if full is None:
        full = max(kl_by_t, default=1) + 1
    if max(kl_by_t.values(), default=0.0) <= 0.0:
        return int(full)
    for t, v in normalized_kl(kl_by_t).items():
        if v < lam:
            return int(t)
    return int(full)


def timestep_kl(model: nn.Module, batches, candidates: list[int], full: int) -> dict[int, float]:
    """KL(log_softmax(out_t) || softmax(out_T)) per candidate t, averaged over the images.

    ``out_t`` are the model's time-averaged logits run at ``t`` time steps (eval mode, no
    grad, neurons reset after every batch); summing the per-batch ``kl_div(...,
    reduction="sum")`` and dividing by the image count is ``reduction="batchmean"`` over
    the whole set. The model's ``timesteps`` and train/eval mode are restored.
    """
    was_training, saved_t = model.training, model.timesteps
    sums = {t: 0.0 for t in candidates}
    n = 0
    model.eval()
    try:
        with torch.no_grad(), parametrize.cached():
            for x, _ in batches:
                model.timesteps = full
                target = F.softmax(model(x).float(), dim=1)
                reset_net(model)
                for t in candidates:
                    model.timesteps = t
                    out = model(x).float()
                    reset_net(model)
                    sums[t] += float(F.kl_div(F.log_softmax(out, dim=1), target, reduction="sum"))
                n += x.shape[0]
    finally:
        model.timesteps = saved_t
        model.train(was_training)
    return {t: s / max(n, 1) for t, s in sums.items()}


class EarlyTimePruner(IMPPruner):
    """IMP searched at a smaller T' chosen by the KL rule; the final ticket retrains at full T.

    Round 0 trains at full T for ``et_epochs`` epochs (capped at the round's epochs),
    then T' is chosen and the rest of the search (the rest of round 0 and every pruning
    round up to the last) runs at T'. Each round ends like IMP's (prune ``p`` of the
    remaining weights by global magnitude, rewind to ``rewind_epoch``); before the last
    round ``timesteps`` goes back to T. A net without time steps (an ANN) or with T < 3
    (no candidate) searches at T, and the description says why.
    """

    uses = IMPPruner.uses + ("recipe.et_epochs", "recipe.et_lambda", "recipe.et_images")

    def apply(self, model: nn.Module, cell) -> nn.Module:
        model = super().apply(model, cell)
        r = cell.recipe
        self.full_t = getattr(model, "timesteps", None)
        self.et_epoch = min(r.et_epochs, r.epochs)
        self.lam = r.et_lambda
        self.images = r.et_images
        return model

    def _choose(self, model: nn.Module, ctx: TrainContext) -> None:
        T = self.full_t
        if T is None:
            self.state.update(t_prime=None, reason="the network has no time steps; searching as plain IMP")
        elif T < 3:
            self.state.update(t_prime=T, reason=f"T={T} leaves no candidate in 2..T-1; searching at full T")
        else:
            candidates = list(range(2, T))
            batches = ctx.val_batches or ctx.train_batches  # a choice: validation images where there is a split
            kl = timestep_kl(model, batches(self.images), candidates, T)
            t_prime = choose_timesteps(kl, self.lam, full=T)
            norm = normalized_kl(kl)
            if t_prime < T:
                reason = f"smallest t' with normalized KL < {self.lam}"
            elif max(kl.values()) <= 0.0:
                reason = "every KL is 0 (the output does not depend on T: a silent net?); searching at full T"
            else:
                reason = f"no candidate has normalized KL < {self.lam}; searching at full T"
            self.state.update(t_prime=t_prime, kl={str(t): v for t, v in kl.items()},
                              kl_normalized={str(t): v for t, v in norm.items()}, reason=reason,
                              chosen_at_epoch=ctx.epoch)
            model.timesteps = t_prime
        log.info("imp-et: T'=%s (T=%s) after epoch %d: %s", self.state["t_prime"], T, ctx.epoch,
                 self.state["reason"])

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> bool:
        super().on_epoch_end(model, ctx)  # the rewind snapshot
        if ctx.round == 0 and ctx.epoch == self.et_epoch and "t_prime" not in self.state:
            self._choose(model, ctx)
        return False

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        if "t_prime" not in self.state:  # a round of 0 epochs: choose before pruning
            self._choose(model, ctx)
        plan = super().on_round_end(model, ctx)
        if self.full_t is not None:
            last = ctx.round + 1 == ctx.rounds - 1
            model.timesteps = self.full_t if last else (self.state["t_prime"] or self.full_t)
        return plan

    def describe(self) -> dict[str, Any]:
        s = self.state
        return {**super().describe(), "timesteps": self.full_t, "search_timesteps": s.get("t_prime"),
                "et_epoch": self.et_epoch, "lambda": self.lam, "images": self.images,
                "kl": s.get("kl"), "kl_normalized": s.get("kl_normalized"), "t_prime_reason": s.get("reason"),
                "final_round_timesteps": self.full_t}


# -- early bird --------------------------------------------------------------------------------


def early_bird_stop(distances: list[float], tau: float, patience: int) -> bool:
    """True when the last ``patience`` distances are all under ``tau``."""
    return len(distances) >= patience and all(d < tau for d in distances[-patience:])


class EarlyBirdPruner(Pruner):
    """An early-bird ticket: stop the search once the magnitude mask stops moving; retrain.

    Round 0 (search) draws the global magnitude mask at the target sparsity after every
    epoch (over all weights, without applying it) and records its normalized Hamming
    distance to the previous epoch's mask. When the last ``eb_patience`` distances are
    all under ``eb_tau`` the round ends early; that epoch's mask is the ticket. If that
    never happens the search runs all its epochs and the last mask is used (the
    description says ``"stable": False``). Round 1 applies the mask (pruned weights stay
    exactly zero) and retrains from the weights at the early-bird point with a fresh
    optimizer and lr schedule, as You et al. retrain the EB ticket (no rewind).
    """

    uses = ("sparsity", "recipe.lr", "recipe.weight_decay", "recipe.eb_tau", "recipe.eb_patience")
    weight_kinds = ("fp32",)

    def apply(self, model: nn.Module, cell) -> nn.Module:
        self.sparsity = check_sparsity(cell.sparsity)
        self.tau = cell.recipe.eb_tau
        self.patience = cell.recipe.eb_patience
        self.search_epochs = cell.recipe.epochs
        return magnitude.add_masks(model)

    def rounds(self, recipe) -> int:
        return 2

    def _draw(self, model: nn.Module) -> list[torch.Tensor]:
        total = sum(m.weight.numel() for _, m in magnitude.masked_layers(model))
        keep = round((1.0 - self.sparsity) * total)
        return magnitude.global_magnitude_masks(model, keep, within_current=False)

    def observe(self, masks: list[torch.Tensor], epoch: int) -> bool:
        """Record this epoch's mask; True when the search should stop here."""
        s = self.state
        masks = [m.detach().to("cpu", torch.bool) for m in masks]
        distances = s.setdefault("distances", [])
        if "mask" in s:
            distances.append(magnitude.mask_distance(s["mask"], masks))
        s["mask"] = masks
        s["mask_epoch"] = epoch
        if early_bird_stop(distances, self.tau, self.patience):
            s["stable"] = True
            return True
        return False

    def on_epoch_end(self, model: nn.Module, ctx: TrainContext) -> bool:
        if ctx.round != 0:
            return False
        stop = self.observe(self._draw(model), ctx.epoch)
        if stop:
            log.info("eb: mask stable (distance < %s for %d epochs) at epoch %d; stopping the search",
                     self.tau, self.patience, ctx.epoch)
        return stop

    def on_round_end(self, model: nn.Module, ctx: TrainContext) -> RoundEnd:
        s = self.state
        if "mask" not in s:  # a search of 0 epochs: draw from the initial weights
            self.observe(self._draw(model), ctx.epoch)
        if not s.get("stable"):
            s["stable"] = False
            log.info("eb: the mask never stayed under %s for %d epochs; using the mask of epoch %d",
                     self.tau, self.patience, s["mask_epoch"])
        magnitude.set_masks(model, [m.float() for m in s["mask"]])
        return RoundEnd(start_epoch=0)

    def describe(self) -> dict[str, Any]:
        s = self.state
        stable = s.get("stable")
        return {**super().describe(), "tau": self.tau, "patience": self.patience,
                "ticket_epoch": s.get("mask_epoch"), "search_budget_epochs": self.search_epochs,
                "stable": stable, "distances": list(s.get("distances", [])),
                "ticket": ("mask stable at the early-bird epoch" if stable else
                           "mask never stable: the last search epoch's mask" if stable is False else None),
                "retrain": "from the weights at the ticket epoch, fresh optimizer and lr schedule"}


@hookimpl
def register_pruners(register):
    register("imp-et", EarlyTimePruner)
    register("eb", EarlyBirdPruner)
