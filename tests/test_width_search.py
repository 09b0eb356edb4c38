"""Width as a grid axis, and the supermask searches for small widths (issue 25): exact checks."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from spikingjelly_lt import ticket as tk
from spikingjelly_lt.build import DataShape, build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.pruners.base import TrainContext
from spikingjelly_lt.pruners.common import effective_weight, prunable_layers
from spikingjelly_lt.pruners.supermask import (apply_supermask, erk_densities, freeze_masks, rerandomize,
                                              supermask_layers)

from conftest import run_cli


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


# -- ERK ---------------------------------------------------------------------------------------

def test_erk_densities_match_the_formula_and_the_overall_density():
    shapes = [(8, 3, 3, 3), (16, 8, 3, 3), (10, 256)]
    d = erk_densities(shapes, 0.2)
    raw = [sum(s) / math.prod(s) for s in shapes]
    eps = d[0] / raw[0]
    for di, ri in zip(d, raw):  # every layer below 1: one common eps
        assert di == pytest.approx(eps * ri, rel=1e-12)
    numels = [math.prod(s) for s in shapes]
    assert sum(di * n for di, n in zip(d, numels)) == pytest.approx(0.2 * sum(numels), rel=1e-12)


def test_erk_caps_a_layer_at_dense_and_solves_again():
    shapes = [(2, 1, 1, 1), (64, 64, 3, 3)]  # the tiny first layer would exceed 1
    d = erk_densities(shapes, 0.5)
    assert d[0] == 1.0
    numels = [math.prod(s) for s in shapes]
    assert d[1] == pytest.approx((0.5 * sum(numels) - numels[0]) / numels[1], rel=1e-12)


def test_erk_supermask_keeps_the_overall_sparsity_and_records_densities():
    model = apply_supermask(tiny_net(), 0.8, layer_density="erk")
    layers = supermask_layers(model)
    total = sum(sm.scores.numel() for _, sm in layers)
    kept = sum(int(sm.mask().sum()) for _, sm in layers)
    assert abs(kept - 0.2 * total) <= len(layers)  # per-layer rounding only
    assert len({round(sm.sparsity, 6) for _, sm in layers}) == len(layers)  # not uniform
    with pytest.raises(UsageError, match="needs model.scope='layer'"):
        apply_supermask(tiny_net(), 0.8, layer_density="erk", scope="global")


# -- partial freezing ---------------------------------------------------------------------------

def test_freeze_masks_are_disjoint_and_of_the_asked_size():
    p, k = freeze_masks(1000, 0.3, 0.2, torch.Generator().manual_seed(1))
    assert int(p.sum()) == 300 and int(k.sum()) == 200 and not bool((p & k).any())
    p2, k2 = freeze_masks(1000, 0.3, 0.2, torch.Generator().manual_seed(1))
    assert torch.equal(p, p2) and torch.equal(k, k2)  # seeded: regrows


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_frozen_fractions_hold_whatever_the_scores(binary, scope):
    model = apply_supermask(tiny_net(), 0.6, binary=binary, scope=scope, freeze_pruned=0.3, freeze_kept=0.1,
                            seed=4)
    layers = supermask_layers(model)
    total = sum(sm.scores.numel() for _, sm in layers)
    assert sum(int(sm.frozen_pruned.sum()) for _, sm in layers) == pytest.approx(0.3 * total, abs=len(layers))
    assert sum(int(sm.frozen_kept.sum()) for _, sm in layers) == pytest.approx(0.1 * total, abs=len(layers))
    with torch.no_grad():  # scores that would prefer exactly the frozen-pruned entries
        for _, sm in layers:
            sm.scores.copy_(torch.where(sm.frozen_pruned, 10.0, torch.where(sm.frozen_kept, 1e-6, 1.0)))
    for name, sm in layers:
        mask = sm.mask()
        assert not bool((mask & sm.frozen_pruned).any()), name
        assert bool(mask[sm.frozen_kept].all()), name
        w = effective_weight(dict(model.named_modules())[name])
        assert torch.equal(w != 0, mask)


def test_freezing_refuses_fractions_the_sparsity_cannot_hold():
    with pytest.raises(UsageError, match="freeze_pruned=0.7"):
        apply_supermask(tiny_net(), 0.5, freeze_pruned=0.7)
    with pytest.raises(UsageError, match="freeze_kept=0.6"):
        apply_supermask(tiny_net(), 0.5, freeze_kept=0.6)


# -- IteRand ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_rerandomized_entries_are_exactly_the_pruned_ones(layout):
    model = apply_supermask(tiny_net(), 0.5)
    if layout == "channels_last":  # the layout the execution path may choose (a view(-1) fails on it)
        model = model.to(memory_format=torch.channels_last)
    for name, sm in supermask_layers(model):
        w = dict(model.named_modules())[name].parametrizations.weight.original
        before, mask = w.detach().clone(), sm.mask()
        n = rerandomize(w, mask, 1.0, torch.Generator().manual_seed(0))
        changed = w.detach() != before
        assert n == int((~mask).sum())
        assert torch.equal(changed, ~mask)  # every pruned entry re-drawn, no kept one touched
        std = math.sqrt(2.0 / w[0].numel())
        assert 0.5 * std < float(w.detach()[~mask].std()) < 1.5 * std  # the init distribution


def test_rerandomize_rate_draws_that_fraction_of_the_pruned():
    model = apply_supermask(tiny_net(), 0.5)
    name, sm = supermask_layers(model)[1]
    w = dict(model.named_modules())[name].parametrizations.weight.original
    before, mask = w.detach().clone(), sm.mask()
    n = rerandomize(w, mask, 0.1, torch.Generator().manual_seed(0))
    changed = w.detach() != before
    assert n == round(0.1 * int((~mask).sum())) == int(changed.sum())
    assert not bool((changed & mask).any())


def _cell(**kw) -> Cell:
    base = {"method": "binw-slt", "sparsity": 0.5, "model.width": 0.25, "model.timesteps": 2,
            "data.dataset": "digits", "recipe.epochs": 1}
    return Cell().with_values({**base, **kw})


SHAPE = DataShape(num_classes=10, in_channels=1, input_size=8)


def test_iterand_in_training_is_seeded_by_cell_step_and_layer():
    cell = _cell(**{"recipe.iterand_period": 2, "recipe.iterand_rate": 0.5})
    runs = []
    for _ in range(2):
        r = resolve(cell)
        model = build_model(r, SHAPE)
        ctx = TrainContext(cell=cell, steps_per_epoch=10)
        for step in (1, 2, 3, 4):
            ctx.step = step
            r.pruner.on_step(model, ctx)
        runs.append([dict(model.named_modules())[n].parametrizations.weight.original.detach().clone()
                     for n, _ in supermask_layers(model)])
        assert r.pruner.describe()["iterand"]["draws"] > 0  # steps 2 and 4 re-drew
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("extra", [
    {"recipe.iterand_period": 1, "recipe.iterand_rate": 1.0},
    {"recipe.freeze_pruned": 0.2, "recipe.freeze_kept": 0.2},
    {"model.layer_density": "erk"},
], ids=["iterand", "freeze", "erk"])
@pytest.mark.parametrize("method", ["binw-slt", "slt"])
def test_tickets_of_every_search_reload_exactly(extra, method, tmp_path):
    cell = _cell(method=method, **extra)
    r = resolve(cell)
    model = build_model(r, SHAPE)
    with torch.no_grad():  # a search that moved: new scores (and re-drawn weights for IteRand)
        for _, sm in supermask_layers(model):
            sm.scores.normal_(generator=torch.Generator().manual_seed(3))
    if "recipe.iterand_period" in extra:
        r.pruner.rerandomize(model, TrainContext(cell=cell, step=1))
    spec = tk.TicketSpec(cell, SHAPE)
    x = torch.rand(3, 1, 8, 8)
    for store_signs in (False, True):
        tk.export_ticket(model, tmp_path / "t.sjt", spec=spec, store_signs=store_signs)
        loaded = tk.load_ticket(tmp_path / "t.sjt")
        for (n, a), (_, b) in zip(prunable_layers(model), prunable_layers(loaded)):
            assert torch.equal(effective_weight(a), effective_weight(b)), n


# -- identity -----------------------------------------------------------------------------------

def test_new_search_fields_count_only_when_set():
    base = resolve(_cell())
    assert "score_optimizer" not in json.dumps(base.key())  # stored cells keep their hashes
    for key, value in (("recipe.score_optimizer", "sgd"), ("recipe.iterand_period", 10),
                       ("recipe.freeze_kept", 0.1), ("model.layer_density", "erk")):
        assert resolve(_cell(**{key: value})).hash != base.hash, key
    # a dense method ignores them
    assert resolve(_cell(method="snn", **{"recipe.iterand_period": 10})).hash == resolve(_cell(method="snn")).hash


def test_score_optimizer_chooses_the_scores_optimizer():
    for name in ("adam", "sgd"):
        cell = _cell(**{"recipe.score_optimizer": name})
        r = resolve(cell)
        groups = r.pruner.param_groups(build_model(r, SHAPE), cell.recipe)
        assert groups[0].name == "scores" and groups[0].optimizer == name


# -- width as a grid axis -----------------------------------------------------------------------

def test_width_list_makes_a_grid(capsys, monkeypatch):
    code, out, err = run_cli(["config", "show", "--json"], capsys, monkeypatch)  # warm the CLI import
    from spikingjelly_lt.cli.request import options_to_cells

    cells, _ = options_to_cells(methods="snn,binw-slt", sparsity=None, seeds="0,1", width="0.0625,0.125",
                                 profile="smoke", config=None, sets=None, options={}, data_dir=None)
    got = sorted((c.cell.method, c.cell.seed, c.cell.model.width) for c in cells)
    assert got == sorted((m, s, w) for m in ("snn", "binw-slt") for s in (0, 1) for w in (0.0625, 0.125))
    order = [(c.cell.seed, c.cell.model.width, c.cell.method) for c in cells]
    assert order[0] == (0, 0.0625, "snn") and order[1] == (0, 0.0625, "binw-slt")  # snn first in each width
    cells, _ = options_to_cells(methods="snn", sparsity=None, seeds="0", width=None, profile="smoke",
                                 config=None, sets=["model.width=0.5"], options={}, data_dir=None)
    assert [c.cell.model.width for c in cells] == [0.5]
    with pytest.raises(UsageError, match="given twice"):
        options_to_cells(methods="snn", sparsity=None, seeds="0", width="0.25", profile="smoke", config=None,
                          sets=["width=0.5"], options={}, data_dir=None)


def test_bad_width_is_one_line_and_exit_2(capsys, monkeypatch):
    code, out, err = run_cli(["bench", "--width", "0.25,-1", "--epochs", "0"], capsys, monkeypatch)
    assert code == 2 and "model.width" in err and "-1" in err and "Traceback" not in err


def test_bad_search_options_are_refused_before_any_work(capsys, monkeypatch, tmp_path):
    db = tmp_path / "r.db"
    code, out, err = run_cli(["bench", "--methods", "binw-slt", "--epochs", "0", "--results", str(db),
                              "--set", "recipe.freeze_pruned=0.8"], capsys, monkeypatch)
    assert code == 2 and "freeze_pruned=0.8" in err and "Traceback" not in err
    assert not db.exists()


def test_the_width_profile_lists_its_widths():
    from spikingjelly_lt.cli.request import options_to_cells
    from spikingjelly_lt.profiles import get_profile

    prof = get_profile("width")
    assert prof.to_dict()["widths"] == [0.0625, 0.125, 0.25]
    cells, _ = options_to_cells(methods=None, sparsity=None, seeds=None, width=None, profile="width", config=None,
                                 sets=None, options={}, data_dir="/")
    assert len(cells) == 3 * 3 * 3
    assert {(c.cell.model.width, c.cell.model.arch, c.cell.recipe.epochs) for c in cells} == {
        (w, "vgg16", prof.cell["recipe.epochs"]) for w in (0.0625, 0.125, 0.25)}
