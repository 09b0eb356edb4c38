"""Protocol and statistics (docs/protocol.md): the validation split, t-intervals, paired claims,
collapsed cells, profiles' seed plans, firing at initialization, and the figures."""

from __future__ import annotations

import json
import math

import pytest
import torch

from spikingjelly_lt.cell import Cell
from spikingjelly_lt.data.bundle import stratified_split
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.profiles import PROFILES, get_profile
from spikingjelly_lt.pruners.imp import rounds_at_rate
from spikingjelly_lt.results.plots import PALETTE, PLOT_FILES, front
from spikingjelly_lt.results.report import build_report
from spikingjelly_lt.results.table import matrix_table
from spikingjelly_lt.results.stats import claims_table, paired, summarize, t_quantile, verdict
from spikingjelly_lt.training.metrics import collapse

from conftest import CIFAR_SUBSET, run_cli

# -- statistics, by hand ---------------------------------------------------------------


def test_t_interval_of_three_known_numbers():
    s = summarize([1.0, 2.0, 3.0])
    # mean 2, sample std 1, t_{0.975,2} = 4.302653, half = 4.302653 / sqrt(3) = 2.484138
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert s.ci95 == pytest.approx(2.484138, abs=1e-6)
    assert (s.lo, s.hi) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert t_quantile(0.975, 2) == pytest.approx(4.303, abs=5e-4)  # docs/protocol.md §3
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=5e-4)
    one = summarize([0.5])
    assert (one.mean, one.std, one.n, one.ci95) == (0.5, None, 1, None)
    assert summarize([]).n == 0


def test_paired_difference_and_verdicts():
    a = {0: 0.90, 1: 0.80, 2: 0.70, 7: 0.5}  # seed 7 has no partner: not paired
    b = {0: 0.85, 1: 0.80, 2: 0.60}
    s, seeds = paired(a, b)
    # d = 0.05, 0.00, 0.10: mean 0.05, std 0.05, half = 4.302653 * 0.05 / sqrt(3) = 0.124207
    assert seeds == [0, 1, 2] and s.n == 3
    assert s.mean == pytest.approx(0.05) and s.std == pytest.approx(0.05)
    assert s.ci95 == pytest.approx(0.124207, abs=1e-6)
    assert verdict(s, +1) == "undecided at n=3"  # [-0.074, 0.174] holds 0
    clear, _ = paired({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.71, 2: 0.6})  # d = .1, .09, .1
    assert clear.lo > 0
    assert verdict(clear, +1) == "supported" and verdict(clear, -1) == "refuted"
    assert verdict(summarize([0.1]), +1) == "undecided at n=1"


# -- the split -------------------------------------------------------------------------


def test_stratified_split_is_exact_disjoint_and_seeded():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 5)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert [int((labels[val] == c).sum()) for c in range(3)] == [2, 4, 1]  # round(0.2 * n_c)
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert sorted(train.tolist() + val.tolist()) == list(range(35))
    again, val2 = stratified_split(labels, 0.2, seed=0)
    assert torch.equal(val, val2) and torch.equal(train, again)
    _, other = stratified_split(labels, 0.2, seed=1)
    assert not torch.equal(val, other)
    assert len(stratified_split(labels, 0.0)[1]) == 0


def test_run_cell_history_uses_validation_and_tests_once(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    args = ["bench", "--arch", "resnet19", "--seeds", "0,1", "--methods", "ann,bnn-lt", "--epochs", "2",
            "--width", "0.0625", "--limit-train", "300", "--threads", "1", "--results", str(db), "--json"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    cell = data["cells"][0]["metrics"]
    # 300 images, 10 % stratified: 30 held out, 270 train -> 4 batches of 64 per epoch
    assert [set(h) >= {"loss", "train_acc", "val_acc", "lr", "firing_rate"} for h in cell["history"]] == [True] * 2
    assert cell["val_top1"] == cell["history"][-1]["val_acc"] and 0 <= cell["top1"] <= 1
    assert cell["collapsed"] in (True, False) and cell["num_classes"] == 10
    assert " val " in err  # progress shows the validation accuracy
    summary = {e["method"]: e for e in data["summary"]}
    for m in ("ann", "bnn-lt"):
        e = summary[m]
        assert e["top1_n"] == 2 and e["top1_std"] is not None and e["top1_ci95"] == pytest.approx(
            12.7062047 * e["top1_std"] / math.sqrt(2))
    (acc,) = [p for p in data["paired"] if p["metric"] == "top1"]
    tops = {(c["config"]["method"], c["config"]["seed"]): c["metrics"]["top1"] for c in data["cells"]}
    assert (acc["a"], acc["b"], acc["n"]) == ("bnn-lt", "ann", 2)
    assert acc["mean"] == pytest.approx(sum(tops[("bnn-lt", s)] - tops[("ann", s)] for s in (0, 1)) / 2)
    # export: one record per epoch
    code, out, err = run_cli(["results", "export", str(db), "--history", "--format", "json"], capsys, monkeypatch)
    assert code == 0, err
    epochs = json.loads(out)
    assert len(epochs) == 4 * 2 and {"val_acc", "train_acc", "loss", "firing_rate", "lr"} <= set(epochs[0])
    code, out, err = run_cli(["results", "export", str(db), "--format", "xml"], capsys, monkeypatch)
    assert code == 2 and "xml" in err and "csv" in err
    code, out, err = run_cli(["report", str(db), "--out", str(tmp_path / "rep")], capsys, monkeypatch)
    assert code == 0 and "claims" in out and "not run" in out


# -- collapsed cells --------------------------------------------------------------------


def test_collapse_rule():
    assert collapse(0.115, {"a": 0.2}, 10)["collapsed"] is True  # within 2 points of 10 %
    assert collapse(0.125, {"a": 0.2}, 10) == {"collapsed": False, "collapse_reason": None}
    silent = collapse(0.9, {"a": 0.2, "fc1": 0.004}, 10)
    assert silent["collapsed"] and "fc1 0.004" in silent["collapse_reason"]
    assert collapse(None, None, 10)["collapsed"] is None


def _row(method, seed, top1, energy, collapsed=False, sparsity=0.5):
    r = resolve(Cell().replace(method=method, seed=seed, sparsity=sparsity))
    return {"config_hash": r.hash, "config": r.key(), "cell": r.describe(), "status": "done", "reason": None,
            "metrics": {"top1": top1, "energy_pj": energy, "energy_x_snn": 2.0, "energy_x_ann": 5.0,
                        "collapsed": collapsed, "collapse_reason": "validation accuracy 10.0%" if collapsed else None,
                        "spiking": method != "bnn-lt", "num_classes": 10}}


def test_claims_table_pairs_by_seed_and_voids_collapsed_energy(tmp_path):
    rows = [_row("binw-slt", s, t, 10.0 + s) for s, t in ((0, 0.90), (1, 0.80), (2, 0.70))]
    rows += [_row("bnn-lt", s, t, 20.0 + s) for s, t in ((0, 0.80), (1, 0.71), (2, 0.60))]
    rows += [_row("snn", 0, 0.5, 30.0, collapsed=True), _row("snn", 1, 0.5, 30.0)]
    claims = {(c["b"], c["metric"]): c for c in claims_table(rows)}
    acc = claims[("bnn-lt", "top1")]
    assert acc["n"] == 3 and acc["mean"] == pytest.approx((0.1 + 0.09 + 0.1) / 3) and acc["verdict"] == "supported"
    energy = claims[("bnn-lt", "energy_pj")]
    assert energy["mean"] == pytest.approx(-10.0) and energy["std"] == 0 and energy["verdict"] == "supported"
    assert claims[("snn", "energy_pj")]["n"] == 1  # seed 0's snn collapsed: no energy data point
    assert claims[("snn", "top1")]["n"] == 2 and claims[("snn", "top1")]["verdict"] == "undecided at n=2"
    assert claims[("bnn-act-lt", "top1")]["verdict"] == "not run"
    # a method that ran but collapsed on every seed is named, not reported as not run
    gone = claims_table([*rows, _row("bnn-act-lt", 0, 0.1, 5.0, collapsed=True)])
    verdicts = {(c["b"], c["metric"]): c["verdict"] for c in gone}
    assert verdicts[("bnn-act-lt", "energy_pj")] == "no data: bnn-act-lt collapsed"
    assert verdicts[("bnn-act-lt", "top1")] == "undecided at n=1"
    table = {e["method"]: e for e in matrix_table(rows)}
    assert table["snn"]["n_collapsed"] == 1 and table["snn"]["energy_x_ann_n"] == 1
    assert table["binw-slt"]["energy_x_snn_n"] == 2  # seed 0's saving is against a collapsed SNN
    all_collapsed = matrix_table([_row("snn", 0, 0.1, 30.0, collapsed=True)])
    from spikingjelly_lt.results.table import format_matrix

    headers, cells = format_matrix(all_collapsed)
    assert cells[0][headers.index("saving × ANN")] == "– (collapsed)"
    assert cells[0][headers.index("collapsed")] == "yes"
    md = build_report(rows, tmp_path / "rep").read_text()
    assert "## Claims" in md and "supported" in md and "## Collapsed cells" in md
    for name in PLOT_FILES.values():
        assert (tmp_path / "rep" / name).stat().st_size > 1000


def test_front_and_palette():
    pts = [(10.0, 0.5), (5.0, 0.4), (20.0, 0.9), (15.0, 0.45), (5.0, 0.3)]
    assert front(pts) == [1, 0, 2]  # (15, .45) and (5, .3) are dominated
    from matplotlib.colors import to_rgb

    rgb = [to_rgb(c) for c in PALETTE]
    closest = min(math.dist(a, b) for i, a in enumerate(rgb) for b in rgb[i + 1:])
    assert closest > 0.25, "two methods would share a near-identical colour"


# -- profiles ---------------------------------------------------------------------------


def test_profiles_seed_plans_and_imp_rounds():
    from spikingjelly_lt.matrix import expand

    vgg = get_profile("cpu-vgg")
    cells = expand(vgg.base(), vgg.methods, vgg.sparsities, vgg.seed_plan(vgg.methods))
    by = {}
    for c in cells:
        by.setdefault(c.method.name, []).append(c.cell.seed)
    assert by["binw-slt"] == by["bnn-lt"] == [0, 1, 2, 3, 4] and by["snn"] == [0, 1, 2]
    assert by["ann"] == by["slt"] == by["snn-imp"] == by["bnn-act-lt"] == [0]
    base = vgg.base()
    assert (base.model.arch, base.model.timesteps, base.data.limit_train) == ("vgg16", 4, None)
    assert 0.125 <= base.model.width <= 0.25
    cpu = get_profile("cpu")
    assert cpu.seeds_for("binw-slt") == cpu.seeds_for("bnn-lt") == (0, 1, 2)
    for p in PROFILES.values():
        r = resolve(p.base().replace(method="snn-imp"))
        assert p.base().recipe.val_fraction == 0.1, p.name
        rounds = r.pruner.rounds(r.cell.recipe) - 1 if r.cell.recipe.imp_rate == 0 else None
        assert rounds is None or rounds >= (3 if p.name == "paper" else 2), p.name
    # the time-to-ticket sweep: Kim et al.'s 25 % per round
    assert [rounds_at_rate(s, 0.25) for s in (0.5, 0.8, 0.9, 0.95)] == [3, 6, 9, 11]
    tt = get_profile("ticket-time")
    from spikingjelly_lt.build import build_model

    r = resolve(tt.base().replace(method="snn-imp", sparsity=0.9, width=0.0625))
    build_model(r, num_classes=10, in_channels=1, input_size=8)
    assert r.pruner.rounds(r.cell.recipe) == 10  # 9 pruning rounds + the final training


def test_imp_fixed_rate_lands_on_the_target():
    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.pruners.base import TrainContext
    from spikingjelly_lt.pruners.common import sparsity_report

    r = resolve(Cell().replace(method="snn-imp", sparsity=0.8, imp_rate=0.25, width=0.0625, timesteps=2))
    model = build_model(r, num_classes=10, in_channels=1, input_size=8)
    p = r.pruner
    ctx = TrainContext(cell=r.cell, rounds=p.rounds(r.cell.recipe))
    p.on_train_start(model, ctx)
    p.state["rewind"] = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith(".mask")}
    seen = []
    for k in range(p.k):
        ctx.round = k
        p.on_round_end(model, ctx)
        seen.append(sparsity_report(model)["sparsity"])
    assert seen[0] == pytest.approx(0.25, abs=2e-3) and seen[1] == pytest.approx(1 - 0.75 ** 2, abs=2e-3)
    assert seen[-1] == pytest.approx(0.8, abs=1e-3) and len(seen) == 6


# -- firing at initialization -------------------------------------------------------------


def _batch(dataset: str):
    from spikingjelly_lt.data import load_dataset, make_loader

    if dataset == "cifar10":
        if not (CIFAR_SUBSET / "cifar-10-batches-py").is_dir():
            pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
        bundle = load_dataset("cifar10", str(CIFAR_SUBSET))
    else:
        bundle = load_dataset(dataset)
    x, _ = next(iter(make_loader(bundle, "test", 32, shuffle=False)))
    return bundle, x


@pytest.mark.parametrize("method", ["snn", "binw-slt"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_fires_at_initialization(profile, method):
    """Each spiking layer fires >= 1 % on 32 real test images (train-mode BN, seed 0)."""
    from spikingjelly_lt._sj import reset_net
    from spikingjelly_lt.build import DataShape, build_model
    from spikingjelly_lt.training.metrics import MIN_FIRING, FiringRateMonitor

    p = get_profile(profile)
    bundle, x = _batch(p.dataset)
    for width in p.widths or (p.base().model.width,):  # every width of a width grid
        r = resolve(p.base().replace(method=method, seed=0, **{"model.width": width}))
        model = build_model(r, DataShape.of(bundle)).train()
        monitor = FiringRateMonitor(model)
        with monitor, torch.no_grad():
            model(x)
            reset_net(model)
        rates = monitor.rates()
        assert rates, "no spiking layer found"
        silent = {n: round(v, 4) for n, v in rates.items() if v < MIN_FIRING}
        assert not silent, f"{profile}/{method} w{width:g}: layers under 1 % firing at initialization: {silent}"


def test_a_description_from_before_the_split_reads_as_no_split():
    assert Cell.from_dict(Cell().to_dict()).recipe.val_fraction == 0.1
    old = Cell().to_dict()
    del old["recipe"]["val_fraction"]
    assert Cell.from_dict(old).recipe.val_fraction == 0.0
    assert Cell.from_dict({"method": "ann"}).recipe.val_fraction == 0.0  # schema-1 flat config
