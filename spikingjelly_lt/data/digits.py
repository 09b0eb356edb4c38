"""scikit-learn's bundled 8x8 digits: the offline default data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import logger
from .bundle import DataBundle

__all__ = ["load_digits_bundle", "DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION"]

DIGITS_SPLIT_SEED = 0  # fixed: the split never depends on the run seed
DIGITS_TEST_FRACTION = 0.2


def load_digits_bundle(data_dir: str | Path | None = None) -> DataBundle:
    """The 1,797 digits, 1x8x8 in [0, 1], split 80/20 stratified with a fixed seed;
    normalized with the train split's mean and std. ``data_dir`` is ignored."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8], 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    mean, std = float(x_tr.mean(dtype=np.float64)), float(x_tr.std(dtype=np.float64))
    logger.debug("digits: %d train + %d test images (sklearn, bundled)", len(y_tr), len(y_te))
    return DataBundle(
        name="digits",
        train_x=torch.from_numpy(np.ascontiguousarray(x_tr)),
        train_y=torch.from_numpy(y_tr),
        test_x=torch.from_numpy(np.ascontiguousarray(x_te)),
        test_y=torch.from_numpy(y_te),
        num_classes=10,
        in_channels=1,
        input_size=8,
        mean=(mean,),
        std=(std,),
        augment=False,
    )
