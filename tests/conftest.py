import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SJLT_TEST_THREADS", "2")))

CIFAR_SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-subset"


@pytest.fixture
def cifar_subset() -> Path:
    if not (CIFAR_SUBSET / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
    return CIFAR_SUBSET
