"""Batch loader: shapes, seeded augmentation, exact crop/flip pixels, samplers, limits."""

import pytest
import torch

from spikingjelly_lt.data import DataBundle, augment_batch, crop_flip, make_loader
from spikingjelly_lt.errors import UsageError


def _bundle(n=50, augment=True, size=8) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 10
    return DataBundle(
        "toy", x, y, x[:10].clone(), y[:10].clone(), 10, 3, size,
        (0.5, 0.4, 0.3), (0.25, 0.2, 0.1), augment,
    )  # fmt: skip


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_crop_flip_known_pixels():
    x = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    z = torch.zeros(1, dtype=torch.long)
    one = torch.ones(1, dtype=torch.long)
    no, yes = torch.tensor([False]), torch.tensor([True])
    assert torch.equal(crop_flip(x, one, one, no, 1), x)  # centre crop = identity
    up_left = crop_flip(x, z, z, no, 1)[0, 0]  # shifted down-right, zero border
    assert up_left.tolist() == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]
    assert crop_flip(x, one, one, yes, 1)[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    # crop at (2, 2) then mirror: the crop is [[5,6,0],[8,9,0],[0,0,0]]
    assert crop_flip(x, 2 * one, 2 * one, yes, 1)[0, 0].tolist() == [
        [0, 6, 5], [0, 9, 8], [0, 0, 0],
    ]  # fmt: skip


def test_augment_each_image_is_a_crop_flip_of_itself():
    x = torch.randint(0, 256, (64, 3, 6, 6), generator=torch.Generator().manual_seed(1),
                      dtype=torch.uint8)  # fmt: skip
    out = augment_batch(x, torch.Generator().manual_seed(2), padding=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for i in range(len(x)):
        found = [
            (t, l, f)
            for t in range(5)
            for l in range(5)  # noqa: E741
            for f in (False, True)
            if torch.equal(
                crop_flip(x[i : i + 1], torch.tensor([t]), torch.tensor([l]), torch.tensor([f]), 2),
                out[i : i + 1],
            )
        ]
        assert found, f"image {i} is not a crop/flip of its input"
        seen.update(found)
    assert len(seen) > 10  # the draws vary


def test_loader_shapes_dtypes_and_order():
    b = _bundle()
    test = _batches(make_loader(b, "test", 4))
    assert [len(y) for _, y in test] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in test]), b.test_y)  # unshuffled, unaugmented
    x0 = test[0][0]
    assert x0.shape == (4, 3, 8, 8) and x0.dtype == torch.float32 and test[0][1].dtype == torch.int64
    mean = torch.tensor(b.mean).view(1, 3, 1, 1)
    std = torch.tensor(b.std).view(1, 3, 1, 1)
    assert torch.allclose(x0, (b.test_x[:4].float() / 255 - mean) / std)
    train = make_loader(b, "train", 16, seed=3)
    assert len(train) == 4 and len(make_loader(b, "train", 16, drop_last=True)) == 3
    ys = torch.cat([y for _, y in train])
    assert sorted(ys.tolist()) == sorted(b.train_y.tolist()) and not torch.equal(ys, b.train_y)


def test_loader_seeded_deterministic_and_epochs_differ():
    b = _bundle()
    a1, a2 = make_loader(b, batch_size=16, seed=7), make_loader(b, batch_size=16, seed=7)
    e0, e0_again = _batches(a1), _batches(a2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(e0, e0_again))
    e1 = _batches(a1)  # the epoch advances by itself
    assert not torch.equal(e0[0][0], e1[0][0])
    a2.set_epoch(0)
    assert torch.equal(_batches(a2)[0][0], e0[0][0])
    other = _batches(make_loader(b, batch_size=16, seed=8))
    assert not torch.equal(other[0][0], e0[0][0])
    # augmentation alone differs across seeds (same order when not shuffled)
    s1 = _batches(make_loader(b, batch_size=50, shuffle=False, seed=1))[0][0]
    s2 = _batches(make_loader(b, batch_size=50, shuffle=False, seed=2))[0][0]
    plain = _batches(make_loader(b, batch_size=50, shuffle=False, augment=False))[0][0]
    assert s1.shape == plain.shape and not torch.equal(s1, s2) and not torch.equal(s1, plain)


def test_sampler_and_set_epoch_forwarded():
    class Sampler:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, e):
            self.epochs.append(e)

        def __iter__(self):
            return iter([5, 1, 3])

        def __len__(self):
            return 3

    s = Sampler()
    loader = make_loader(_bundle(), batch_size=2, sampler=s, augment=False)
    ys = [y.tolist() for _, y in loader]
    assert ys == [[5, 1], [3]] and len(loader) == 2
    loader.set_epoch(4)
    list(loader)
    assert s.epochs == [0, 4]


def test_limits_and_bad_arguments():
    b = _bundle()
    small = b.limited(train=7, test=3)
    assert len(small.train_y) == 7 and len(small.test_y) == 3
    assert torch.equal(small.train_x, b.train_x[:7])
    assert b.limited() is b and len(b.limited(train=10**6).train_y) == 50
    with pytest.raises(UsageError, match="at least 1"):
        b.limited(train=0)
    with pytest.raises(UsageError, match="unknown split"):
        make_loader(b, "validation")
    with pytest.raises(UsageError, match="no validation split"):
        make_loader(b, "val")  # a split exists only after with_validation(fraction)
    assert len(make_loader(b.with_validation(0.2), "val", 100).y) == 10  # 20 % of 50
    with pytest.raises(UsageError, match="no augmentation"):
        make_loader(_bundle(augment=False), augment=True)
    with pytest.raises(UsageError, match="batch size"):
        make_loader(b, batch_size=0)


def test_passes_never_modify_the_data_set():
    """Regression: in-place normalization of a float32 slice corrupted the bundle."""
    from spikingjelly_lt.data import load_digits_bundle, make_loader

    bundle = load_digits_bundle()
    before = bundle.test_x.clone()
    loader = make_loader(bundle, "test", 100)
    first = [x.clone() for x, _ in loader]
    second = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(bundle.test_x, before)
