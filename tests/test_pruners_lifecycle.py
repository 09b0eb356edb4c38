"""The lifecycle pruners imp-et, eb and gmp (docs/design.md §2.7): exact on tiny models.

Pure rules first (the KL choice of T', the early-bird stop, the cubic schedule), then
the hooks driven by hand with a fake context, then one end-to-end ``run_cell`` each
on digits at width 0.125 and a checkpoint resume.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spikingjelly_lt.build import DataShape, build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.pruners import magnitude
from spikingjelly_lt.pruners.base import TrainContext
from spikingjelly_lt.pruners.early import (
    EarlyBirdPruner,
    EarlyTimePruner,
    choose_timesteps,
    early_bird_stop,
    normalized_kl,
    timestep_kl,
)
from spikingjelly_lt.pruners.gmp import GradualPruner, gmp_sparsity, gmp_window
from spikingjelly_lt.pruners.imp import round_rate
from spikingjelly_lt.training.trainer import run_cell

DIGITS = DataShape(num_classes=10, in_channels=1, input_size=8)


def kept(model: nn.Module) -> int:
    return sum(int(magnitude.weight_mask_of(m).mask.count_nonzero()) for _, m in magnitude.masked_layers(model))


def total(model: nn.Module) -> int:
    return sum(m.weight.numel() for _, m in magnitude.masked_layers(model))


def masks_of(model: nn.Module) -> list[torch.Tensor]:
    return [magnitude.weight_mask_of(m).mask.clone() for _, m in magnitude.masked_layers(model)]


# -- the KL rule -----------------------------------------------------------------------------


def test_choose_timesteps_normalizes_by_the_largest_kl():
    assert normalized_kl({2: 0.9, 3: 0.5}) == {2: 1.0, 3: 0.5 / 0.9}
    assert choose_timesteps({2: 0.9, 3: 0.5}, 0.6) == 3  # 0.556 < 0.6
    assert choose_timesteps({2: 0.9, 3: 0.5, 4: 0.1}, 0.6) == 3  # the smallest qualifying t'
    assert choose_timesteps({2: 0.9, 3: 0.5, 4: 0.1}, 0.5) == 4  # 0.556 is not < 0.5; 0.111 is
    assert choose_timesteps({2: 0.9, 3: 0.6}, 0.6) == 4  # 0.667: none qualifies -> full T = 4
    assert choose_timesteps({2: 1.0, 3: 0.6}, 0.6, full=7) == 7  # 0.6 is not strictly under 0.6
    assert choose_timesteps({2: 0.9, 3: 0.53}, 0.6, full=7) == 3  # 0.589
    assert choose_timesteps({2: 0.9, 3: 0.55}, 0.6, full=7) == 7  # 0.611
    assert choose_timesteps({2: 0.0, 3: 0.0}, 0.6) == 4  # all 0: normalization undefined -> full T
    assert normalized_kl({2: 0.0, 3: 0.0}) == {2: 0.0, 3: 0.0}
    assert choose_timesteps({}, 0.6, full=2) == 2


class StepTable(nn.Module):
    """A 'network' whose per-step logits are a fixed table; the output averages the first T."""

    def __init__(self, table: torch.Tensor, timesteps: int) -> None:
        super().__init__()
        self.register_buffer("table", table)  # [T_max, C]
        self.timesteps = timesteps
        self.resets = 0
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.table[: self.timesteps].mean(0).expand(x.shape[0], -1) * (1 + 0 * x.sum(1, keepdim=True))

    def reset(self) -> None:  # reset_net calls it
        self.resets += 1


def test_timestep_kl_on_a_hand_built_model_picks_the_close_t():
    # per-step logits: the mean over 2 steps is far from the mean over 4, the mean over 3 close
    table = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.4, 0.0, 0.0]])
    model = StepTable(table, 4).train()
    batches = [(torch.randn(5, 2), torch.zeros(5)), (torch.randn(3, 2), torch.zeros(3))]
    kl = timestep_kl(model, iter(batches), [2, 3], 4)
    p4 = F.softmax(torch.tensor([1.1, 0.0, 0.0]), 0)

    def hand(mean: list[float]) -> float:  # sum_c p4 (log p4 - log p_t)
        return float((p4 * (p4.log() - F.log_softmax(torch.tensor(mean), 0))).sum())

    assert kl[2] == pytest.approx(hand([0.0, 0.0, 0.0]), rel=1e-5)
    assert kl[3] == pytest.approx(hand([1.0, 0.0, 0.0]), rel=1e-5)
    assert kl[3] < 0.6 * kl[2]
    assert choose_timesteps(kl, 0.6, full=4) == 3
    assert model.timesteps == 4 and model.training  # restored
    assert model.modes and not any(model.modes)  # every forward in eval mode
    assert model.resets == 2 * 3  # after every batch at T and at each candidate


def fake_ctx(cell: Cell, rounds: int, images: torch.Tensor | None = None, steps_per_epoch: int = 1) -> TrainContext:
    def take(n: int):
        x = images[:n]
        yield x, torch.zeros(x.shape[0], dtype=torch.long)

    return TrainContext(cell=cell, rounds=rounds, steps_per_epoch=steps_per_epoch, train_batches=take)


def test_early_time_pruner_chooses_t_prime_on_the_hand_built_model():
    cell = Cell().replace(method="snn-imp-et", epochs=3, et_epochs=2, et_lambda=0.6, et_images=4)
    table = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.4, 0.0, 0.0]])
    model = nn.Sequential(nn.Linear(2, 3))
    model.timesteps = 4
    pruner = EarlyTimePruner()
    pruner.apply(model, cell)
    toy = StepTable(table, 4)
    ctx = fake_ctx(cell, 3, torch.randn(10, 2))
    ctx.epoch = 2
    pruner._choose(toy, ctx)
    assert toy.timesteps == 3 and pruner.state["t_prime"] == 3
    assert pruner.state["kl_normalized"]["2"] == 1.0
    assert pruner.state["kl_normalized"]["3"] == pytest.approx(pruner.state["kl"]["3"] / pruner.state["kl"]["2"])
    assert pruner.describe()["search_timesteps"] == 3
    # a rule that nothing passes keeps T and says why
    strict = EarlyTimePruner()
    strict.apply(model, cell.replace(et_lambda=0.0))
    toy.timesteps = 4
    strict._choose(toy, ctx)
    assert toy.timesteps == 4 and strict.state["t_prime"] == 4 and "no candidate" in strict.state["reason"]
    # T < 3: nothing to choose
    short = EarlyTimePruner()
    model.timesteps = 2
    short.apply(model, cell)
    short._choose(model, ctx)
    assert short.state["t_prime"] == 2 and "no candidate" in short.state["reason"]


# -- imp-et mask counts per round: the same global magnitude rounds as IMP ----------------------


def test_imp_et_prunes_like_imp_and_searches_at_t_prime():
    cell = Cell().replace(method="snn-imp-et", arch="resnet19", width=0.125, timesteps=4, sparsity=0.75,
                          imp_rounds=2, epochs=2, et_epochs=1, et_images=16, rewind_epoch=1)
    r_et, r_imp = resolve(cell), resolve(cell.replace(method="snn-imp"))
    et, imp = build_model(r_et, DIGITS), build_model(r_imp, DIGITS)
    p_et, p_imp = r_et.pruner, r_imp.pruner
    assert isinstance(p_et, EarlyTimePruner) and p_et.rounds(cell.recipe) == 3
    assert set(et.state_dict()) == set(imp.state_dict())  # masks from the start: resumable
    n = total(et)
    rate = round_rate(0.75, 2)
    torch.manual_seed(1)
    images = torch.randn(16, 1, 8, 8)
    expect_kept = n
    gen = torch.Generator().manual_seed(3)
    for rnd in range(2):
        ctx_et, ctx_imp = fake_ctx(cell, 3, images), fake_ctx(cell, 3, images)
        for c in (ctx_et, ctx_imp):
            c.round = rnd
        p_et.on_train_start(et, ctx_et)
        p_imp.on_train_start(imp, ctx_imp)
        for epoch in (1, 2):
            # 'training': the same weight change in both nets
            for (_, a), (_, b) in zip(magnitude.masked_layers(et), magnitude.masked_layers(imp)):
                delta = torch.randn(a.weight.shape, generator=gen) * 0.05
                with torch.no_grad():
                    a.parametrizations.weight.original.add_(delta)
                    b.parametrizations.weight.original.add_(delta)
            ctx_et.epoch = ctx_imp.epoch = epoch
            assert p_et.on_epoch_end(et, ctx_et) is False
            p_imp.on_epoch_end(imp, ctx_imp)
            if rnd == 0 and epoch == 1:  # T' chosen after N = 1 epoch
                assert et.timesteps == p_et.state["t_prime"] in (2, 3, 4)
                assert set(p_et.state["kl"]) == {"2", "3"}
        t_prime = p_et.state["t_prime"]
        plan_et, plan_imp = p_et.on_round_end(et, ctx_et), p_imp.on_round_end(imp, ctx_imp)
        assert plan_et == plan_imp
        expect_kept -= round(rate * expect_kept)
        assert kept(et) == kept(imp) == expect_kept
        assert all(torch.equal(a, b) for a, b in zip(masks_of(et), masks_of(imp)))
        assert et.timesteps == (t_prime if rnd == 0 else 4)  # the last round retrains at full T
    assert kept(et) == n - round(rate * n) - round(rate * (n - round(rate * n)))
    assert abs(1 - kept(et) / n - 0.75) < 2 / n
    d = p_et.describe()
    assert d["timesteps"] == 4 and d["final_round_timesteps"] == 4 and d["rounds"] == 2


# -- early bird --------------------------------------------------------------------------------


def test_early_bird_stop_rule():
    assert not early_bird_stop([0.01], 0.02, 2)
    assert early_bird_stop([0.01, 0.01], 0.02, 2)
    assert not early_bird_stop([0.01, 0.02], 0.02, 2)  # strictly under tau
    assert early_bird_stop([0.5, 0.0, 0.01], 0.02, 2)


def _flip(mask: torch.Tensor, k: int) -> torch.Tensor:
    out = mask.clone().reshape(-1)
    out[:k] = 1 - out[:k]
    return out.view_as(mask)


def _eb_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10))  # 200 prunable weights


def _eb_setup(epochs: int):
    """An early-bird pruner on 200 prunable weights, and the half-kept starting masks."""
    cell = Cell().replace(method="snn-eb", sparsity=0.5, eb_tau=0.02, eb_patience=2, epochs=epochs)
    model = _eb_model()
    pruner = EarlyBirdPruner()
    pruner.apply(model, cell)
    base = [torch.cat([torch.ones(50), torch.zeros(50)]).view(10, 10) for _ in range(2)]
    return cell, model, pruner, base


def test_early_bird_stops_at_the_first_stable_run_and_applies_that_mask(monkeypatch):
    cell, model, pruner, base = _eb_setup(epochs=8)
    # flips per epoch over 200 entries: distances 0.1, 0.01, 0.025, 0.01, 0.005 -> stop at epoch 6
    seq, cur = [], base
    for k in (0, 20, 2, 5, 2, 1, 0, 0):
        cur = [_flip(cur[0], k), cur[1]]
        seq.append(cur)
    feed = iter(seq)
    monkeypatch.setattr(pruner, "_draw", lambda m: next(feed))
    ctx = fake_ctx(cell, 2)
    answers = []
    for epoch in range(1, 9):
        ctx.epoch = epoch
        answers.append(pruner.on_epoch_end(model, ctx))
        if answers[-1]:
            break
    assert answers == [False, False, False, False, False, True]
    assert pruner.state["distances"] == [0.1, 0.01, 0.025, 0.01, 0.005]
    assert pruner.state["mask_epoch"] == 6
    assert kept(model) == 200  # drawn, not applied, during the search
    before = [m.parametrizations.weight.original.clone() for _, m in magnitude.masked_layers(model)]
    assert pruner.on_round_end(model, ctx).start_epoch == 0
    assert all(torch.equal(a, b.float()) for a, b in zip(masks_of(model), seq[5]))
    for (_, m), w, mask in zip(magnitude.masked_layers(model), before, seq[5]):
        assert torch.equal(m.parametrizations.weight.original, w)  # no rewind: the EB-point weights
        assert (m.weight[mask == 0] == 0).all()
    d = pruner.describe()
    assert d["ticket_epoch"] == 6 and d["stable"] is True and len(d["distances"]) == 5


def test_early_bird_never_stable_uses_the_last_mask(monkeypatch):
    cell, model, pruner, base = _eb_setup(epochs=3)
    seq = [base, [_flip(base[0], 10), base[1]], [_flip(base[0], 30), base[1]]]
    feed = iter(seq)
    monkeypatch.setattr(pruner, "_draw", lambda m: next(feed))
    ctx = fake_ctx(cell, 2)
    for epoch in (1, 2, 3):
        ctx.epoch = epoch
        assert pruner.on_epoch_end(model, ctx) is False
    pruner.on_round_end(model, ctx)
    assert all(torch.equal(a, b) for a, b in zip(masks_of(model), seq[2]))
    d = pruner.describe()
    assert d["stable"] is False and d["ticket_epoch"] == 3 and "never stable" in d["ticket"]
    assert d["distances"] == [0.05, 0.1]


def test_early_bird_draws_the_global_magnitude_mask_at_the_target():
    cell = Cell().replace(method="snn-eb", sparsity=0.7)
    model = _eb_model()
    pruner = EarlyBirdPruner()
    pruner.apply(model, cell)
    masks = pruner._draw(model)
    assert sum(int(m.sum()) for m in masks) == 60 and kept(model) == 200
    w = torch.cat([m.weight.detach().abs().reshape(-1) for _, m in magnitude.masked_layers(model)])
    keep = torch.cat([m.reshape(-1) for m in masks]) > 0
    assert w[~keep].max() <= w[keep].min()


# -- gradual magnitude pruning -------------------------------------------------------------


def test_gmp_schedule_values():
    # s_t = 0.8 + (0 - 0.8)(1 - (t - 10)/40)^3
    assert gmp_sparsity(5, 0.0, 0.8, 10, 40) == 0.0
    assert gmp_sparsity(10, 0.0, 0.8, 10, 40) == 0.0
    assert gmp_sparsity(20, 0.0, 0.8, 10, 40) == pytest.approx(0.8 - 0.8 * 0.75**3)  # 0.4625
    assert gmp_sparsity(20, 0.0, 0.8, 10, 40) == pytest.approx(0.4625)
    assert gmp_sparsity(30, 0.0, 0.8, 10, 40) == pytest.approx(0.7)
    assert gmp_sparsity(30, 0.2, 0.8, 10, 40) == pytest.approx(0.725)
    assert gmp_sparsity(50, 0.0, 0.8, 10, 40) == 0.8  # exactly the target at the end
    assert gmp_sparsity(99, 0.0, 0.8, 10, 40) == 0.8
    assert gmp_sparsity(0, 0.1, 0.8, 0, 0) == 0.1 and gmp_sparsity(1, 0.1, 0.8, 0, 0) == 0.8


def test_gmp_window():
    assert gmp_window(4, 1, 0) == (1, 3)
    assert gmp_window(4, 0, 0) == (0, 3)
    assert gmp_window(2, 0, 0) == (0, 2)  # round(1.5) = 2
    assert gmp_window(1, 0, 0) == (0, 1)
    assert gmp_window(4, 2, 0) == (2, 3)
    assert gmp_window(4, 3, 0) == (3, 4)  # at least one epoch
    assert gmp_window(4, 1, 4) == (1, 4)
    for bad in ((4, 4, 0), (4, 0, 5), (4, 2, 2)):
        with pytest.raises(UsageError):
            gmp_window(*bad)


@pytest.mark.parametrize("interval, due", [(5, [10, 15, 20, 25, 30]), (7, [10, 17, 24, 30])])
def test_gmp_prunes_on_schedule(interval, due):
    cell = Cell().replace(method="snn-gmp", sparsity=0.8, gmp_initial=0.0, gmp_start_epoch=1, gmp_end_epoch=0,
                          gmp_interval=interval, epochs=4)
    model = _eb_model()
    pruner = GradualPruner()
    pruner.apply(model, cell)
    ctx = fake_ctx(cell, 1, steps_per_epoch=10)  # t0 = 10, end = round(3) * 10 = 30, n dt = 20
    pruner.on_train_start(model, ctx)
    assert kept(model) == 200
    pruned_at, kept_at = [], {}
    for step in range(1, 41):
        before = kept(model)
        ctx.step = step
        pruner.on_step(model, ctx)
        if pruner.due(step):
            pruned_at.append(step)
            s = gmp_sparsity(step, 0.0, 0.8, 10, 20)
            assert kept(model) == round((1 - s) * 200), step
            kept_at[step] = kept(model)
        else:
            assert kept(model) == before, step
    assert pruned_at == due
    assert kept_at[10] == 200  # s_i = 0 at t_0
    if interval == 5:  # step 20: s = 0.8 - 0.8 (1 - 10/20)^3 = 0.7 -> 60 of 200 kept
        assert kept_at[20] == 60
    assert kept_at[30] == 40 and kept(model) == 40  # exactly the target from the last step on
    assert magnitude.current_sparsity(model) == 0.8
    d = pruner.describe()
    assert d["t0_step"] == 10 and d["n_dt_steps"] == 20
    assert d["prunes"] == len(due) - 1  # s_i = 0 at t_0 is no prune


def test_gmp_initial_sparsity_applies_at_t0():
    cell = Cell().replace(method="snn-gmp", sparsity=0.5, gmp_initial=0.25, gmp_start_epoch=0, epochs=2,
                          gmp_interval=1)
    model = _eb_model()
    pruner = GradualPruner()
    pruner.apply(model, cell)
    pruner.on_train_start(model, fake_ctx(cell, 1, steps_per_epoch=3))
    assert kept(model) == 150
    with pytest.raises(UsageError):
        GradualPruner().apply(_eb_model(), cell.replace(gmp_initial=0.6))


# -- end to end ------------------------------------------------------------------------------

# no validation split here: the step arithmetic below counts all 64 training images
TINY = dict(arch="resnet19", width=0.125, timesteps=4, batch_size=32, limit_train=64, limit_test=64, val_fraction=0.0)


def expected_imp_kept(cell: Cell) -> tuple[int, int]:
    model = build_model(resolve(cell), DIGITS)
    n = total(model)
    k = n
    rate = round_rate(cell.sparsity, cell.recipe.imp_rounds)
    for _ in range(cell.recipe.imp_rounds):
        k -= round(rate * k)
    return n, k


ET_CELL = Cell().replace(method="snn-imp-et", sparsity=0.5, imp_rounds=2, epochs=1, et_epochs=1, et_images=64,
                         rewind_epoch=0, **TINY)


@pytest.fixture
def force_t_prime(monkeypatch):
    """At this size the net is nearly silent after one epoch (every KL ~ 0, T' = T); force
    T' = 2 so the search really runs at T', and record the T each epoch trained at."""
    import spikingjelly_lt.pruners.early as early

    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(early, "choose_timesteps", lambda kl, lam, full=None: 2)
    original = EarlyTimePruner.on_epoch_end

    def spy(self, model, ctx):
        seen.append((ctx.round, model.timesteps))
        return original(self, model, ctx)

    monkeypatch.setattr(EarlyTimePruner, "on_epoch_end", spy)
    return seen


def test_run_cell_imp_et(force_t_prime, tmp_path):
    events = []
    m = run_cell(ET_CELL, progress=lambda e, **i: events.append((e, i)) if e == "round" else None)
    n, k = expected_imp_kept(ET_CELL)
    assert m["rounds"] == 3 and m["epochs_run"] == 3
    assert m["sparsity"] == pytest.approx(1 - k / n, abs=1e-9)
    d = m["pruner"]
    assert d["search_timesteps"] == 2 and d["timesteps"] == 4 and set(d["kl"]) == {"2", "3"}
    assert force_t_prime == [(0, 4), (1, 2), (2, 4)]  # full T, then T' = 2, the ticket at full T
    assert [i["round"] for e, i in events] == [1, 2]

    # resume: round 1 has trained one epoch at T'; die before its checkpoint, rerun
    class Stop(Exception):
        pass

    def kill(event, **info):
        if event == "epoch" and info["round"] == 1:
            raise Stop

    ckpt = tmp_path / "et.pt"
    with pytest.raises(Stop):
        run_cell(ET_CELL, checkpoint=ckpt, progress=kill)
    force_t_prime.clear()
    again = run_cell(ET_CELL, checkpoint=ckpt)
    assert force_t_prime == [(1, 2), (2, 4)]  # T' came back from the checkpoint
    assert again["mask_digest"] == m["mask_digest"]
    assert again["sparsity"] == m["sparsity"] and again["top1"] == m["top1"]
    assert again["pruner"]["search_timesteps"] == 2


def test_run_cell_eb():
    cell = Cell().replace(method="snn-eb", sparsity=0.6, epochs=3, eb_tau=1.0, eb_patience=1, **TINY)
    m = run_cell(cell)
    n, _ = expected_imp_kept(cell.replace(method="snn-imp", imp_rounds=1))
    d = m["pruner"]
    # tau 1.0, q 1: the first distance (epoch 2) is under tau -> ticket at epoch 2, then 3 retrain epochs
    assert d["ticket_epoch"] == 2 and d["stable"] is True and len(d["distances"]) == 1
    assert m["rounds"] == 2 and m["epochs_run"] == 2 + 3
    assert m["sparsity"] == pytest.approx(1 - round(0.4 * n) / n, abs=1e-9)


def test_run_cell_eb_resumes_after_an_early_stop(tmp_path):
    """Killed between the early stop and the round end: the resume does not train round 0 on."""
    cell = Cell().replace(method="snn-eb", sparsity=0.6, epochs=3, eb_tau=1.0, eb_patience=1, **TINY)
    whole = run_cell(cell)

    class Killed(Exception):
        pass

    def die_at_round(event, **info):
        if event == "round":
            raise Killed

    ckpt = tmp_path / "eb.pt"
    with pytest.raises(Killed):
        run_cell(cell, checkpoint=ckpt, progress=die_at_round)
    resumed = run_cell(cell, checkpoint=ckpt)
    assert resumed["epochs_run"] == whole["epochs_run"] == 2 + 3
    assert resumed["mask_digest"] == whole["mask_digest"] and resumed["top1"] == whole["top1"]
    assert resumed["search_seconds"] < resumed["time_to_ticket_s"]


def test_run_cell_gmp():
    cell = Cell().replace(method="snn-gmp", sparsity=0.7, epochs=2, gmp_interval=1, gmp_end_epoch=1, **TINY)
    m = run_cell(cell)
    n, _ = expected_imp_kept(cell.replace(method="snn-imp", imp_rounds=1))
    d = m["pruner"]
    assert m["rounds"] == 1 and m["epochs_run"] == 2
    assert d["t0_step"] == 0 and d["n_dt_steps"] == 2 and d["prunes"] == 2  # 64 images / 32 = 2 steps
    assert m["sparsity"] == pytest.approx(1 - round(0.3 * n) / n, abs=1e-9)
    assert math.isclose(d["last_prune"]["sparsity"], 0.7)
