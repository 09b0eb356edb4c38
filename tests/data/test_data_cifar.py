"""CIFAR readers: the real subset fixture, a self-written CIFAR-100, and bad directories."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from spikingjelly_lt.data import CIFAR10_MEAN, load_cifar10, load_cifar100, make_loader
from spikingjelly_lt.errors import UsageError

SUBSET = Path(__file__).resolve().parents[2].parent / "shared/data/cifar10-subset"


@pytest.fixture(scope="module")
def subset():
    if not (SUBSET / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 subset fixture absent: {SUBSET}")
    return load_cifar10(str(SUBSET))


def _write(path: Path, n: int, label_key: str, num_classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    d = {
        b"batch_label": b"test batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key.encode(): rng.integers(0, num_classes, n).tolist(),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == "fine_labels":
        d[b"coarse_labels"] = rng.integers(0, 20, n).tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(d, protocol=2))
    return d


def test_subset_shapes_and_labels(subset):
    b = subset
    assert b.train_x.shape == (18000, 3, 32, 32) and b.train_x.dtype == torch.uint8
    assert b.test_x.shape == (1000, 3, 32, 32)
    assert b.train_y.shape == (18000,) and b.test_y.shape == (1000,)
    assert b.train_y.dtype == torch.int64
    assert set(b.train_y.unique().tolist()) == set(range(10))
    assert 0 <= int(b.test_y.min()) and int(b.test_y.max()) <= 9
    assert (b.num_classes, b.in_channels, b.input_size, b.augment) == (10, 3, 32, True)
    assert b.mean == CIFAR10_MEAN


def test_subset_pixel_exact_and_batches_dir_accepted(subset):
    folder = SUBSET / "cifar-10-batches-py"
    with open(folder / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    i = 10000 + 1234  # data_batch_2 follows data_batch_1's 10,000 images
    assert torch.equal(subset.train_x[i].flatten(), torch.from_numpy(raw[b"data"][1234]))
    assert int(subset.train_y[i]) == raw[b"labels"][1234]
    again = load_cifar10(folder)  # the batches folder itself
    assert torch.equal(again.test_x, subset.test_x) and torch.equal(again.train_y, subset.train_y)


def test_subset_normalized_mean_near_zero(subset):
    loader = make_loader(subset, "train", 4096, shuffle=False, augment=False)
    total = torch.zeros(3, dtype=torch.float64)
    sq = torch.zeros(3, dtype=torch.float64)
    for x, _ in loader:
        assert x.dtype == torch.float32
        total += x.double().sum((0, 2, 3))
        sq += x.double().pow(2).sum((0, 2, 3))
    n = 18000 * 32 * 32
    mean = total / n
    std = (sq / n - mean**2).sqrt()
    assert mean.abs().max() < 0.02  # full-train-set constants on an 18k subset
    assert (std - 1).abs().max() < 0.02


def test_cifar100_written_official_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    train = _write(folder / "train", 12, "fine_labels", 100, seed=1)
    test = _write(folder / "test", 5, "fine_labels", 100, seed=2)
    for where in (tmp_path, folder):
        b = load_cifar100(str(where))
        assert b.train_x.shape == (12, 3, 32, 32) and b.test_x.shape == (5, 3, 32, 32)
        assert b.num_classes == 100
        exp = torch.from_numpy(train[b"data"]).view(12, 3, 32, 32)
        assert torch.equal(b.train_x, exp)
        assert torch.equal(b.test_x.flatten(1), torch.from_numpy(test[b"data"]))
        assert b.train_y.tolist() == train[b"fine_labels"]
        assert b.test_y.tolist() == test[b"fine_labels"]
        # channel-major rows: the green plane starts at byte 1024
        assert int(b.train_x[3, 1, 0, 0]) == int(train[b"data"][3, 1024])
        assert int(b.train_x[3, 2, 31, 31]) == int(train[b"data"][3, 3071])


def test_cifar10_any_subset_of_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    b4 = _write(folder / "data_batch_4", 3, "labels", 10, seed=3)
    _write(folder / "test_batch", 2, "labels", 10, seed=4)
    b = load_cifar10(tmp_path)
    assert b.train_y.tolist() == b4[b"labels"] and len(b.test_y) == 2


def test_missing_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match="no CIFAR-10 data in") as e:
        load_cifar10(str(missing))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "cifar-10-batches-py" in msg
    with pytest.raises(UsageError, match="cifar-100-python"):
        load_cifar100(str(tmp_path))
    with pytest.raises(UsageError, match="needs a data directory"):
        load_cifar10(None)


def test_no_train_batches(tmp_path):
    _write(tmp_path / "cifar-10-batches-py" / "test_batch", 2, "labels", 10, seed=0)
    with pytest.raises(UsageError, match="no CIFAR-10 training batches"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\x00garbage bytes\xff" * 10, "not a readable pickle"),
        (pickle.dumps([1, 2, 3]), "not a dict"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "no 'data' and 'labels'"),
        (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), "shape"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "outside"),
        (pickle.dumps({b"data": __import__("os").getcwd}), "not allowed"),
    ],
)
def test_malformed_test_batch(tmp_path, content, why):
    folder = tmp_path / "cifar-10-batches-py"
    _write(folder / "data_batch_1", 2, "labels", 10, seed=0)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(UsageError, match=why) as e:
        load_cifar10(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(folder / "test_batch") in msg
