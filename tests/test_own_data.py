"""Issue 21, part 2: data by reference (tensors:, imagefolder:, frames:, pkg.mod:fn), fingerprints, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli

FRAMES_NET = '''
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron


def make(num_classes, in_channels, input_size):
    net = nn.Sequential(layer.Conv2d(in_channels, 4, 3, padding=1, bias=False), layer.BatchNorm2d(4),
                        neuron.LIFNode(), layer.AvgPool2d(4), layer.Flatten(),
                        layer.Linear(4 * (input_size // 4) ** 2, num_classes))
    functional.set_step_mode(net, "m")
    return net
'''

BUNDLE = '''
import torch
from spikingjelly_lt.data import DataBundle


def load():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 4, 4, generator=g)
    y = torch.arange(40) % 2
    return DataBundle("mine", x[:30], y[:30], x[30:], y[30:], 2, 1, 4, (0.5,), (0.3,), False)
'''


def arrays(n=20, shape=(1, 8, 8), classes=3, dtype=np.uint8):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, *shape)).astype(dtype)
    return {"x_train": x, "y_train": np.arange(n) % classes, "x_test": x[:6], "y_test": np.arange(6) % classes}


def frames(n=300, t=5):
    """[N, T, 2, 16, 16] event frames: class c fires in quadrant c (plus noise)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 4
    x = (rng.random((n, t, 2, 16, 16)) < 0.05).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, :, :, 8 * r:8 * r + 8, 8 * q:8 * q + 8] += rng.random((t, 2, 8, 8)) < 0.5
    return {"x_train": x[:240], "y_train": y[:240], "x_test": x[240:], "y_test": y[240:]}


def imagefolder(root, empty=False, junk=False):
    from PIL import Image

    for split in ("train", "test"):
        for c in ("cat", "dog"):
            d = root / split / c
            d.mkdir(parents=True)
            if empty and split == "train" and c == "dog":
                continue
            for i in range(4):
                Image.fromarray(np.full((6, 6, 3), 40 * i + (100 if c == "dog" else 0), np.uint8)).save(d / f"{i}.png")
    if junk:
        (root / "train" / "cat" / "notes.txt").write_text("hi")
    return root


def test_tensors_layouts_fingerprint_and_bundles(tmp_path):
    from spikingjelly_lt.data import load_dataset

    a = arrays(shape=(8, 8, 3))  # NHWC
    np.savez(tmp_path / "d.npz", **a)
    b = load_dataset(f"tensors:{tmp_path / 'd.npz'}")
    assert (b.in_channels, b.input_size, b.num_classes, b.train_x.dtype) == (3, 8, 3, torch.uint8)
    assert torch.equal(b.train_x[0], torch.from_numpy(a["x_train"][0]).permute(2, 0, 1))
    torch.save({k: torch.from_numpy(np.asarray(v)).float() / 255 if k.startswith("x") else torch.from_numpy(v)
                for k, v in arrays().items()}, tmp_path / "d.pt")
    p = load_dataset(f"tensors:{tmp_path / 'd.pt'}", val_fraction=0.2)
    assert p.train_x.dtype == torch.float32 and p.val_y is not None and p.fingerprint.startswith("sha256:")
    f = load_dataset(f"imagefolder:{imagefolder(tmp_path / 'img')}")
    assert (f.num_classes, f.in_channels, f.input_size, len(f.train_y)) == (2, 3, 6, 8)
    (tmp_path / "mine.py").write_text(BUNDLE)
    c = load_dataset(f"{tmp_path / 'mine.py'}:load")
    assert c.fingerprint.startswith("sha256:") and len(c.test_y) == 10


def test_frames_train_with_t_from_the_data(tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "ev.npz", **frames())
    (tmp_path / "evnet.py").write_text(FRAMES_NET)
    code, out, err = run_cli(["bench", "--arch", f"{tmp_path / 'evnet.py'}:make", "--dataset",
                              f"frames:{tmp_path / 'ev.npz'}", "--methods", "snn,binw-slt", "--set",
                              "recipe.epochs=1", "--set", "recipe.batch_size=32", "--results", str(tmp_path / "r.db"),
                              "--json"], capsys, monkeypatch)
    assert code == 0, err
    cells = json.loads(out)["cells"]
    assert [c["status"] for c in cells] == ["done", "done"]
    assert all(c["config"]["model"]["timesteps"] == 5 for c in cells)
    assert cells[1]["metrics"]["top1"] > 0.5  # binw-slt learns the quadrants from the frames (chance: 0.25)


def test_checkpoint_of_other_data_is_refused(tmp_path):
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.training.trainer import CellFailed, run_cell

    np.savez(tmp_path / "d.npz", **arrays(n=64, classes=2))
    cell = Cell().replace(method="snn", arch=f"{tmp_path / 'net.py'}:make", dataset=f"tensors:{tmp_path / 'd.npz'}",
                          epochs=1, batch_size=32, val_fraction=0.0)
    (tmp_path / "net.py").write_text(FRAMES_NET)
    ck = tmp_path / "c.pt"
    run_cell(cell, checkpoint=ck)
    payload = torch.load(ck, weights_only=True)
    payload["data_fingerprint"] = "sha256:other"
    torch.save(payload, ck)
    with pytest.raises(CellFailed, match="trained on other data"):
        run_cell(cell, checkpoint=ck)


def _bad_inputs(tmp_path):
    def npz(name, **changes):
        a = {**arrays(), **changes}
        np.savez(tmp_path / name, **{k: v for k, v in a.items() if v is not None})
        return f"tensors:{tmp_path / name}"

    np.savez(tmp_path / "ev.npz", **frames(n=260, t=3))
    return [
        (["--dataset", npz("missing.npz", y_test=None)], "missing.npz lacks y_test"),
        (["--dataset", npz("lengths.npz", y_train=np.zeros(7, np.int64))], "x_train has 20 samples but y_train has 7"),
        (["--dataset", npz("range.npz", y_test=np.array([0, 1, 2, 3, 4, -1]))], "y_test has labels outside"),
        (["--dataset", npz("classes.npz", num_classes=np.array(2))], "labels outside [0, 2)"),
        (["--dataset", npz("ambiguous.npz", x_train=np.zeros((20, 3, 8, 3), np.uint8))], "ambiguous"),
        (["--dataset", npz("dtype.npz", x_train=np.zeros((20, 1, 8, 8), np.int64))], "valid: uint8 or float"),
        (["--dataset", f"tensors:{tmp_path / 'absent.npz'}"], "absent.npz does not exist"),
        (["--dataset", f"imagefolder:{imagefolder(tmp_path / 'junk', junk=True)}"], "notes.txt is not an image"),
        (["--dataset", f"imagefolder:{imagefolder(tmp_path / 'empty', empty=True)}"], "dog is empty"),
        (["--dataset", f"frames:{tmp_path / 'ev.npz'}", "--set", "model.timesteps=4"], "T=3 but model.timesteps=4"),
        (["--dataset", "digits", "--data-dir", str(tmp_path)], "reads no --data-dir"),
    ]


def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch):
    for args, message in _bad_inputs(tmp_path):
        db = tmp_path / "r.db"
        code, out, err = run_cli(["bench", "--methods", "snn", "--results", str(db), *args], capsys, monkeypatch)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not db.exists() and not (tmp_path / "r.db.ckpt").exists(), args
