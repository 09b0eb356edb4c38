"""digits: fixed stratified split, [0, 1] pixels, train-set normalization, registration."""

import numpy as np
import torch

from spikingjelly_lt.data import load_cifar10, load_cifar100, load_digits_bundle, make_loader


def test_digits_split_stratified_and_fixed():
    torch.manual_seed(123)
    np.random.seed(123)
    a = load_digits_bundle()
    torch.manual_seed(999)
    np.random.seed(999)
    b = load_digits_bundle("/ignored")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape == (1437, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert (a.num_classes, a.in_channels, a.input_size, a.augment) == (10, 1, 8, False)
    assert float(a.train_x.min()) == 0.0 and float(a.train_x.max()) == 1.0
    total = torch.bincount(torch.cat([a.train_y, a.test_y]), minlength=10)
    test = torch.bincount(a.test_y, minlength=10)
    assert ((test.double() - 0.2 * total.double()).abs() <= 1).all()


def test_digits_normalized_with_train_stats():
    b = load_digits_bundle()
    x = torch.cat([x for x, _ in make_loader(b, "train", 500, shuffle=False)]).double()
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(unbiased=False)) - 1) < 1e-5


def test_registered_as_plugin():
    from spikingjelly_lt.data import load_dataset
    from spikingjelly_lt.plugins import lookup

    assert lookup("datasets", "digits") is load_digits_bundle
    assert lookup("datasets", "cifar10") is load_cifar10
    assert lookup("datasets", "cifar100") is load_cifar100
    small = load_dataset("digits", limit_train=20, limit_test=10)
    assert len(small.train_y) == 20 and len(small.test_y) == 10
