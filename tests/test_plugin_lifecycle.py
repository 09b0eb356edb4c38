"""Third-party pruners on the lifecycle: the docs example, the old function form, the
example distribution's OpenLTH controls (plugins/sjlt-random-prune)."""

import re
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from spikingjelly_lt import hookimpl, plugins
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.nn.masks import weight_mask_of
from spikingjelly_lt.pruners import magnitude
from spikingjelly_lt.training.trainer import load_trained, run_cell

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model.width": 0.0625, "model.timesteps": 2, "recipe.epochs": 1, "data.limit_train": 128,
        "data.limit_test": 64, "recipe.batch_size": 64}


def tiny(method: str, **extra) -> Cell:
    return Cell(method=method).replace(**{**TINY, **extra})


@pytest.fixture(scope="module")
def controls():
    """The example distribution's module, registered (from its entry point, or by us)."""
    try:
        import sjlt_random_prune
    except ImportError:
        sys.path.insert(0, str(ROOT / "plugins" / "sjlt-random-prune"))
        import sjlt_random_prune
    plugins.load_plugins()
    ours = plugins.pm.get_plugin("random_prune") is None
    if ours:
        plugins.pm.register(sjlt_random_prune, name="random_prune")
    try:
        yield sjlt_random_prune
    finally:
        if ours:
            plugins.pm.unregister(name="random_prune")


def _docs_example() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S)
              if "def register_pruners" in b and re.search(r"^class \w+\(", b, re.M)]
    assert len(blocks) == 1, "docs/plugins.md must hold exactly one complete example pruner"
    return blocks[0]


def test_docs_example_pruner_registers_and_trains_through_run_cell():
    code = _docs_example()
    assert 30 <= len(code.strip().splitlines()) <= 60
    module = types.ModuleType("sjlt_late_prune")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    plugins.pm.register(module, name="docs-example")
    try:
        assert plugins.registry("pruners")["late-prune"].plugin == "docs-example"
        m = run_cell(tiny("late-prune", sparsity=0.75))
    finally:
        plugins.pm.unregister(name="docs-example")
    assert "late-prune" not in plugins.names("pruners")
    kept = m["pruner"]["kept"]
    assert m["pruner"]["pruned_after_epoch"] == 1 and kept
    assert m["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert m["pruner"]["class"].endswith("LatePrune")


def test_old_form_function_pruner_with_torch_prune_trains_through_run_cell():
    """A function pruner written the old way (torch.nn.utils.prune) still loads and trains."""
    from torch.nn.utils import prune

    from spikingjelly_lt.pruners.common import prunable_layers

    def first_half(model, sparsity, *, seed=0, **_):
        for _, m in prunable_layers(model):
            n = m.weight.numel()
            mask = torch.ones(n)
            mask[: round(sparsity * n)] = 0.0
            prune.custom_from_mask(m, "weight", mask.view_as(m.weight))
        return model

    class OldForm:
        @hookimpl
        def register_pruners(self, register):
            register("old-first-half", first_half)

    plugins.pm.register(OldForm(), name="old-form")
    try:
        m = run_cell(tiny("old-first-half", sparsity=0.5))
    finally:
        plugins.pm.unregister(name="old-form")
    assert m["pruner"]["form"] == "function" and m["pruner"]["class"].endswith("first_half")
    assert m["rounds"] == 1 and m["epochs_run"] == 1
    assert m["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_random_function_pruner_one_shot_exact_counts(controls):
    """``random`` (old function form, WeightMask masks) through FunctionPruner and run_cell."""
    model = controls.random_prune(nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 5)), 0.6, seed=3)
    assert [int(weight_mask_of(m).mask.count_nonzero()) for m in model] == [80, 20]
    again = controls.random_prune(nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 5)), 0.6, seed=3)
    assert all(torch.equal(weight_mask_of(a).mask, weight_mask_of(b).mask) for a, b in zip(model, again))
    kept = controls.random_prune(nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 5)), 0.6, keep_last=True)
    assert weight_mask_of(kept[1]) is None
    m = run_cell(tiny("random", sparsity=0.6))
    assert m["pruner"]["form"] == "function" and m["sparsity"] == pytest.approx(0.6, abs=0.01)


def test_reinitialize_redraws_weights_keeps_masks_and_resets_bn(controls):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    magnitude.add_masks(model)
    magnitude.prune_to(model, 0.5)
    masks = [weight_mask_of(m).mask.clone() for _, m in magnitude.masked_layers(model)]
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model[1].running_mean.fill_(3.0)
        model[1].weight.fill_(2.0)
    controls.reinitialize(model, 7)
    assert all(torch.equal(a, weight_mask_of(m).mask) for a, (_, m) in zip(masks, magnitude.masked_layers(model)))
    w0 = model[0].parametrizations.weight.original
    assert not torch.equal(w0, before[0])
    assert torch.equal(model[1].running_mean, torch.zeros(4)) and torch.equal(model[1].weight.detach(), torch.ones(4))
    bound = 1.0 / 3.0  # kaiming_uniform(a=sqrt(5)) on fan_in 9: U(-1/sqrt(9), 1/sqrt(9))
    assert float(w0.detach().abs().max()) <= bound
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    magnitude.add_masks(other)
    controls.reinitialize(other, 7)
    assert torch.equal(other[0].parametrizations.weight.original, w0)  # seeded: the same draw


def test_random_reinit_keeps_the_imp_ticket_mask_with_fresh_weights(controls, tmp_path):
    imp = run_cell(tiny("imp", **{"recipe.imp_rounds": 2}), checkpoint=tmp_path / "imp.pt")
    ctl = run_cell(tiny("random-reinit", **{"recipe.imp_rounds": 2}), checkpoint=tmp_path / "rr.pt")
    d = ctl["pruner"]
    assert d["control"] == "random-reinit" and d["rounds"] == 2 and d["training_runs"] == 3 == ctl["rounds"]
    assert d["reinit_seed"] == 0 + controls.REINIT_SEED_OFFSET
    assert d["kept"] == d["ticket_kept"]
    assert ctl["mask_digest"] == imp["mask_digest"]  # the same search, so the same ticket mask
    _, _, m_imp = load_trained(tmp_path / "imp.pt")
    _, _, m_ctl = load_trained(tmp_path / "rr.pt")
    kept = {n: int(weight_mask_of(m).mask.count_nonzero()) for n, m in magnitude.masked_layers(m_ctl)}
    assert kept == d["kept"]
    w_imp = m_imp.get_submodule(next(iter(kept))).parametrizations.weight.original
    w_ctl = m_ctl.get_submodule(next(iter(kept))).parametrizations.weight.original
    assert not torch.allclose(w_imp, w_ctl)


def test_random_prune_has_the_ticket_per_layer_counts_and_another_mask(controls, tmp_path):
    imp = run_cell(tiny("imp", **{"recipe.imp_rounds": 1}))
    ctl = run_cell(tiny("random-prune", **{"recipe.imp_rounds": 1}), checkpoint=tmp_path / "rp.pt")
    d = ctl["pruner"]
    assert d["control"] == "random-prune" and d["mask_seed"] == controls.MASK_SEED_OFFSET
    assert d["kept"] == d["ticket_kept"] and ctl["sparsity"] == pytest.approx(imp["sparsity"])
    assert ctl["mask_digest"] != imp["mask_digest"]
    _, _, model = load_trained(tmp_path / "rp.pt")
    kept = {n: int(weight_mask_of(m).mask.count_nonzero()) for n, m in magnitude.masked_layers(model)}
    assert kept == d["ticket_kept"]
