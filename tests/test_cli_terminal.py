"""What a person reads: the table at 80 and 160 columns, ETAs, TensorBoard, hints, merge."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from conftest import run_cli
from spikingjelly_lt.cli.progress import Eta, _fmt_s
from spikingjelly_lt.cli.tables import print_matrix
from spikingjelly_lt.cli.tensorboard_log import TensorBoardLog
from spikingjelly_lt.results.store import ResultStore

SMOKE = Path(__file__).resolve().parents[1] / "docs" / "results" / "smoke" / "results.jsonl"
METHODS = ["ann", "bnn-lt", "bnn-act-lt", "snn", "snn-imp", "slt", "binw-slt"]
VALUES = ["98.89", "96.39", "3.99e+07", "10.1×", "1.47×", "0.281", "57.1"]


def _rows():
    return [json.loads(line) for line in SMOKE.read_text().splitlines()]


@pytest.mark.parametrize("width, parts", [(80, 2), (160, 1)])
def test_matrix_table_fits_the_terminal_and_truncates_nothing(width, parts):
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    print_matrix(_rows(), "resnet19 on digits (smoke)", console=console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text, text
    for value in METHODS + VALUES:
        assert value in text, (value, text)
    assert text.count("┏") == parts  # at 80 columns: two tables, the method column in both
    assert all(text.count(f"│ {m} ") == parts for m in METHODS), text


def test_wide_pipe_keeps_the_full_headers():
    console = Console(width=200, record=True, force_terminal=False, color_system=None)
    print_matrix(_rows(), "t", console=console)
    text = console.export_text()
    assert "saving × SNN" in text and "time to ticket s" in text and text.count("┏") == 1


def test_eta_of_cell_and_matrix():
    now = [0.0]
    eta = Eta(4, clock=lambda: now[0])
    eta.skip()  # resumed: takes no time, does not count
    eta.start(epochs=10, rounds=1)
    now[0] = 20.0
    cell, matrix = eta.cell(epochs_done=2)  # 10 s / epoch -> 80 s left, 2 more cells at 100 s
    assert (cell, matrix) == (80.0, 280.0)
    now[0] = 100.0
    eta.done()
    eta.start(epochs=5, rounds=1)
    now[0] = 110.0
    cell, matrix = eta.cell(epochs_done=1)  # 40 s left here; 1 more cell at the measured 100 s
    assert (cell, matrix) == (40.0, 140.0)
    now[0] = 150.0
    eta.done()  # 2 cells of 100 s and 50 s
    eta.start(epochs=10, rounds=1, done_epochs=6)  # resumed from a checkpoint at epoch 6 of 10
    now[0] = 160.0
    cell, matrix = eta.cell(epochs_done=7)  # 10 s for its one epoch here: 30 s left; 0 more cells
    assert (cell, matrix) == (30.0, 30.0)
    now[0] = 190.0
    eta.cell(epochs_done=10)
    eta.done()  # 40 s for 4 of its 10 epochs: it stands for a 100 s cell
    assert eta.run_seconds == 250.0 and eta.finished == 3
    assert _fmt_s(3725) == "1:02:05" and _fmt_s(65) == "1:05" and _fmt_s(None) == "?"


def test_log_dir_without_tensorboard_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    import builtins

    real = builtins.__import__

    def no_tb(name, *args, **kw):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError("TensorBoard logging requires TensorBoard version 1.15 or above")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    code, out, err = run_cli(["bench", "--methods", "ann", "--results", str(tmp_path / "r.db"),
                              "--log-dir", str(tmp_path / "tb")], capsys, monkeypatch)
    assert code == 2 and "pip install 'spikingjelly-lt[tensorboard]'" in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()  # said before any work


def test_tensorboard_log_writes_train_and_test_scalars(tmp_path, monkeypatch):
    written = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            written.append((Path(self.log_dir).name, tag, value, step))

        def flush(self):
            pass

        def close(self):
            written.append((Path(self.log_dir).name, "closed", None, None))

    tb = TensorBoardLog.__new__(TensorBoardLog)
    tb.dir, tb._writer_cls, tb.writer, tb.epochs = tmp_path, FakeWriter, None, 1
    tb("start", cell={"method": "snn-imp", "sparsity": 0.5, "seed": 0}, epochs=2, rounds=2, steps=3)
    tb("epoch", round=1, epoch=2, loss=0.5, train_acc=0.9, lr=[0.01, 0.1], images_per_s=100.0)
    tb("measured", metrics={"top1": 0.8, "mean_firing_rate": 0.2, "sparsity": 0.5, "energy_pj": 1e6})
    assert ("snn-imp_s0.5_seed0", "train/loss", 0.5, 4) in written
    assert ("snn-imp_s0.5_seed0", "train/lr_0", 0.01, 4) in written  # the trainer's lr is a list
    assert ("snn-imp_s0.5_seed0", "train/lr_1", 0.1, 4) in written
    assert ("snn-imp_s0.5_seed0", "test/mean_firing_rate", 0.2, 0) in written
    assert written[-1][1] == "closed" and tb.writer is None


@pytest.mark.parametrize("argv, hint", [
    (["bench", "--sparsity", "0.5", "0.9"], "--sparsity 0.5,0.9"),
    (["bench", "--methods", "ann", "snn", "--epochs", "1"], "--methods ann,snn"),
    (["bench", "--seeds=0", "1", "2"], "--seeds 0,1,2"),
])
def test_space_separated_list_gets_a_comma_hint(argv, hint, capsys, monkeypatch):
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and hint in err and "comma-separated" in err and "Traceback" not in err


def test_merge_prints_a_sentence_and_json(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with ResultStore(a) as sa:
        sa.finish(sa.begin({"m": 1}), {"top1": 0.5})
        sa.finish(sa.begin({"m": 2}), {"top1": 0.6})
    ResultStore(b).close()
    code, out, err = run_cli(["results", "merge", str(a), str(b), "-o", str(b)], capsys, monkeypatch)
    assert code == 0, err
    assert "merged 1 file(s) into" in out and "2 row(s) added" in out and "now has 2 row(s)" in out
    assert "MergeStats" not in out + err and "is the destination itself" in out
    code, out, err = run_cli(["results", "merge", str(a), "-o", str(b), "--json"], capsys, monkeypatch)
    stats = json.loads(out)
    assert code == 0 and (stats["added"], stats["kept"], stats["rows"]) == (0, 2, 2)


def test_partial_cifar_folder_is_named_at_the_default_log_level(tmp_path, caplog):
    import logging
    import pickle

    import numpy as np

    from spikingjelly_lt.data.cifar import load_cifar10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 20), ("data_batch_3", 10), ("test_batch", 8)):
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, fh)
    with caplog.at_level(logging.INFO, logger="spikingjelly_lt"):
        bundle = load_cifar10(tmp_path)
    assert len(bundle.train_y) == 30
    (msg,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "cifar10" in r.getMessage()]
    assert "using data_batch_1, data_batch_3: 30 training images" in msg
    assert "data_batch_2, data_batch_4, data_batch_5 absent" in msg
