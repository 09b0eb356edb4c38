"""Device bugs caught without a GPU: every family's train step and eval pass on a simulated ``cuda``.

``tests/_simcuda.py`` gives tensors that say they are on ``cuda:0`` and refuse what real CUDA
refuses (a CPU tensor mixed into an op, other than a 0-dim operand of a binary op), and
counts host syncs. On the code before issue 22 this file fails: the LIF backward's
``addcmul`` with a CPU ``self`` and the trainer's CPU ``loss_sum`` / ``correct``.
"""

from __future__ import annotations

import pytest
import torch

from _simcuda import SimCuda, sim_cuda
from spikingjelly_lt.build import DataShape, build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.data import load_dataset, make_loader
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.pruners.base import TrainContext
from spikingjelly_lt.training.precision import precision_for
from spikingjelly_lt.training.trainer import Optimizers, _batches, evaluate, train_epoch, train_step

CUDA = torch.device("cuda", 0)


def _cell(method: str, **values) -> Cell:
    base = {"model.arch": "resnet19", "model.width": 0.0625, "model.timesteps": 2, "model.v_threshold": 0.5,
            "recipe.epochs": 2, "recipe.batch_size": 16, "data.limit_train": 96, "data.limit_test": 32,
            "recipe.eb_patience": 1, "recipe.rewind_epoch": 0}
    return Cell(method=method).with_values({**base, **values})


def _setup(cell: Cell, precision: str = "fp32"):
    r = resolve(cell)
    bundle = load_dataset("digits", None, limit_train=cell.data.limit_train, limit_test=cell.data.limit_test,
                          val_fraction=0.25)
    prec = precision_for(precision, CUDA, cell.recipe.memory_format)
    model = prec.model(build_model(r, DataShape.of(bundle)).to(CUDA))
    loader = make_loader(bundle, "train", cell.recipe.batch_size, seed=0, drop_last=True, device=CUDA)
    val = make_loader(bundle, "val", 32, device=CUDA)
    steps = len(loader)
    opts = Optimizers(r.pruner.param_groups(model, cell.recipe), cell.recipe.epochs * steps)
    ctx = TrainContext(cell=cell, rounds=r.pruner.rounds(cell.recipe), steps_per_epoch=steps, device=CUDA,
                       train_batches=_batches(make_loader(bundle, "train", 32, shuffle=False, augment=False,
                                                          device=CUDA), CUDA),
                       val_batches=_batches(val, CUDA))
    return r, model, prec, loader, val, opts, ctx


FAMILIES = [
    ("snn", {}), ("binw-slt", {}), ("binw-slt", {"model.scope": "global", "recipe.ramp_epochs": 1}),
    ("slt", {}), ("bnn-lt", {}), ("bnn-act-lt", {}), ("ann", {}), ("snn-gmp", {"recipe.gmp_interval": 1}),
]


@pytest.mark.parametrize(("method", "values"), FAMILIES, ids=[m + ("-global" if v else "") for m, v in FAMILIES])
def test_train_step_and_eval_on_cuda_without_host_syncs(method, values, monkeypatch):
    cell = _cell(method, **values)
    with sim_cuda(monkeypatch) as stats:
        r, model, prec, loader, val, opts, ctx = _setup(cell)
        assert all(isinstance(p, SimCuda) for p in model.parameters())
        r.pruner.on_train_start(model, ctx)
        x, y = next(iter(loader))
        assert x.device.type == "cuda" and y.device.type == "cuda"  # the data set lives on the device
        stats.syncs.clear()
        loss, out = train_step(model, prec.input(x), y, opts, prec)
        if r.spiking:
            from spikingjelly_lt._sj import reset_net

            reset_net(model)
        r.pruner.on_step(model, ctx)
        assert stats.syncs == [], f"host syncs in one train step of {method}: {stats.syncs}"
        assert loss.device.type == "cuda" and out.shape[0] == x.shape[0]
        # a whole epoch reads back once at its end (loss, accuracy, the non-finite check)
        sums = train_epoch(model, model, loader, opts, prec, r.pruner, ctx, spiking=r.spiking)
        assert sums["seen"] == len(loader) * cell.recipe.batch_size and sums["loss_sum"] == sums["loss_sum"]
        assert len(stats.syncs) <= 4, sorted(set(stats.where))
        r.pruner.on_epoch_end(model, ctx)
        result = evaluate(model, val, CUDA, energy_model="horowitz45", precision=prec)
        assert 0.0 <= result["top1"] <= 1.0 and result["energy"].energy_pj > 0


@pytest.mark.parametrize("method", ["snn-imp", "ann-imp", "snn-eb"])
def test_round_change_and_early_bird_on_cuda(method, monkeypatch):
    cell = _cell(method)
    with sim_cuda(monkeypatch):
        r, model, prec, loader, val, opts, ctx = _setup(cell)
        r.pruner.on_train_start(model, ctx)
        for epoch in range(2):
            train_epoch(model, model, loader, opts, prec, r.pruner, ctx, spiking=r.spiking)
            ctx.epoch = epoch + 1
            r.pruner.on_epoch_end(model, ctx)
        if ctx.rounds > 1:
            plan = r.pruner.on_round_end(model, ctx)  # prune + rewind, on the device
            assert plan is not None
            masks = [b for n, b in model.named_buffers() if "mask" in n]
            assert masks and all(isinstance(m, SimCuda) for m in masks)
            loss, _ = train_step(model, prec.input(next(iter(loader))[0]), next(iter(loader))[1], opts, prec)
            assert loss.device.type == "cuda"


def test_bf16_and_fp16_autocast_paths_on_cuda(monkeypatch):
    for precision in ("bf16", "fp16"):
        cell = _cell("binw-slt", **{"recipe.precision": precision})
        with sim_cuda(monkeypatch):
            r, model, prec, loader, val, opts, ctx = _setup(cell, precision)
            scaler = prec.grad_scaler() if precision == "fp16" else None
            r.pruner.on_train_start(model, ctx)
            x, y = next(iter(loader))
            loss, out = train_step(model, prec.input(x), y, opts, prec, scaler)
            assert loss.device.type == "cuda"


def test_fp32_on_cuda_turns_tf32_off_and_records_it():
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)
    before = [f.fp32_precision for f in flags]
    try:
        for f in flags:
            f.fp32_precision = "tf32"  # cuDNN's own default for convolutions
        p = precision_for("fp32", CUDA)
        p.apply()
        assert [f.fp32_precision for f in flags] == ["ieee"] * 3
        assert p.describe()["tf32"] is False
        t = precision_for("tf32", CUDA)
        t.apply()
        assert [f.fp32_precision for f in flags] == ["tf32"] * 3 and t.describe()["tf32"] is True
    finally:
        for f, b in zip(flags, before):
            f.fp32_precision = b


def test_the_simulated_device_refuses_what_cuda_refuses(monkeypatch):
    """The harness itself: the two bug patterns of issue 22 raise, the legal CPU scalar does not."""
    from _simcuda import DeviceMismatch

    with sim_cuda(monkeypatch) as stats:
        b = torch.ones(4).to("cuda")
        with pytest.raises(DeviceMismatch):  # bug 1: a CPU `self` of addcmul
            torch.addcmul(torch.tensor(1.0), b, b, value=2.0, out=b)
        acc = torch.zeros(())
        with pytest.raises(DeviceMismatch):  # bug 2: a CPU accumulator
            acc += b.sum()
        assert (b * torch.tensor(2.0)).device.type == "cuda"  # a 0-dim CPU operand is fine
        float(b.sum())
        assert stats.syncs == ["_local_scalar_dense"]


def test_device_cuda_without_cuda_is_one_line_exit_2(capsys, monkeypatch):
    from conftest import run_cli

    for dev in ("cuda", "cuda:1"):
        code, out, err = run_cli(["bench", "--device", dev, "--methods", "ann"], capsys, monkeypatch)
        assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1 and out == ""


def test_device_under_torchrun_takes_the_local_rank(monkeypatch):
    from spikingjelly_lt.errors import UsageError
    from spikingjelly_lt.runner import resolve_device

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda", 1) == resolve_device("auto")
    with pytest.raises(UsageError, match="every rank on GPU 0"):
        resolve_device("cuda:0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match="has 2 GPU"):
        resolve_device("cuda:5")


def test_a_runtime_error_in_a_cell_fails_that_cell_and_the_matrix_goes_on(tmp_path, monkeypatch):
    """Issue 22: a RuntimeError (here a simulated CUDA out-of-memory) ends the row 'failed' with one line."""
    from spikingjelly_lt import runner
    from spikingjelly_lt.matrix import expand
    from spikingjelly_lt.results.store import ResultStore

    real = runner.run_cell

    def run_cell(cell, **kw):
        if cell.cell.method == "snn":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(cell, **kw)

    monkeypatch.setattr(runner, "run_cell", run_cell)
    base = _cell("ann").replace(epochs=1)
    cells = expand(base, ["snn", "ann"], [0.5], [0])
    store = ResultStore(tmp_path / "r.db")
    outcomes = runner.run_matrix(cells, store, device=torch.device("cpu"), checkpoint_dir=tmp_path / "ck")
    assert [o.status for o in outcomes] == ["failed", "done"]
    reason = store.get(outcomes[0].hash)["reason"]
    assert store.get(outcomes[0].hash)["status"] == "failed"
    assert "out of memory" in reason and "recipe.batch_size" in reason and "\n" not in reason


@pytest.mark.parametrize("engine", ["fp16", "bf16", "fp32"])
def test_deploy_cuda_engines_plan_and_run_on_the_device(engine, monkeypatch):
    """The deploy engines' CUDA planning (weights, scales, the float64 self-check) on a simulated device."""
    from spikingjelly_lt.deploy import compile_model

    cell = _cell("binw-slt")
    r = resolve(cell)
    bundle = load_dataset("digits", None, limit_train=64, limit_test=32)
    model = build_model(r, DataShape.of(bundle)).eval()
    x = make_loader(bundle, "test", 8).x[:8].float().div(255.0) if bundle.test_x.dtype == torch.uint8 else \
        make_loader(bundle, "test", 8).x[:8]
    with sim_cuda(monkeypatch):
        net = compile_model(model, engine=engine, device="cuda")
        assert net.device.type == "cuda"
        out = net(x.to("cuda"))
        assert out.device.type == "cuda" and out.shape == (8, bundle.num_classes)
