"""CIFAR-10 / CIFAR-100 from the official python pickles, without torchvision.

Any subset of the CIFAR-10 train batches is accepted (``data_batch_1..5``). The pickles
are read with an unpickler that only admits the numpy array globals they contain.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import logger
from ..errors import UsageError
from .bundle import DataBundle

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "load_cifar10",
    "load_cifar100",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class _Format:
    title: str  # "CIFAR-10"
    name: str  # registry name
    folder: str  # the official folder name
    train_files: tuple[str, ...]  # any non-empty subset of these is accepted
    test_file: str
    label_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str  # the expected layout, for messages


_CIFAR10 = _Format(
    "CIFAR-10", "cifar10", "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "labels", 10,
    CIFAR10_MEAN, CIFAR10_STD, "{data_batch_1..5,test_batch}",
)  # fmt: skip
_CIFAR100 = _Format(
    "CIFAR-100", "cifar100", "cifar-100-python", ("train",), "test", "fine_labels", 100,
    CIFAR100_MEAN, CIFAR100_STD, "{train,test}",
)  # fmt: skip

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _expected(fmt: _Format, where: Path) -> str:
    return f"expected {where}/{fmt.folder}/{fmt.layout} ({fmt.title} official python format)"


def _find_dir(fmt: _Format, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise UsageError(
            f"{fmt.name} needs a data directory: "
            f"expected DIR/{fmt.folder}/{fmt.layout} ({fmt.title} official python format)"
        )
    root = Path(data_dir).expanduser()
    for cand in (root / fmt.folder, root):
        if (cand / fmt.test_file).is_file():
            return cand
    raise UsageError(f"no {fmt.title} data in {root}: {_expected(fmt, root)}")


def _read_file(fmt: _Format, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, 3, 32, 32], labels int64 [n])`` of one pickle, validated."""

    def bad(why: str) -> UsageError:
        return UsageError(
            f"malformed {fmt.title} file {path}: {why}; {_expected(fmt, path.parent.parent)}"
        )

    try:
        with open(path, "rb") as f:
            raw = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is bad data
        raise bad(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(raw, dict):
        raise bad(f"a {type(raw).__name__}, not a dict")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    data, labels = d.get("data"), d.get(fmt.label_key)
    if data is None or labels is None:
        raise bad(f"no 'data' and '{fmt.label_key}' entries")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32):  # fmt: skip
        raise bad("'data' is not a uint8 array of shape [n, 3072]")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise bad(f"'{fmt.label_key}' is not a list of integers ({exc})") from exc
    if y.shape != (len(data),):
        raise bad(f"{len(data)} images but {y.size} labels")
    if len(y) and (y.min() < 0 or y.max() >= fmt.num_classes):
        raise bad(f"labels outside 0..{fmt.num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), y


def _read_split(fmt: _Format, folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [_read_file(fmt, folder / name) for name in files]
    x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def _load(fmt: _Format, data_dir: str | Path | None) -> DataBundle:
    folder = _find_dir(fmt, data_dir)
    train_files = [n for n in fmt.train_files if (folder / n).is_file()]
    if not train_files:
        raise UsageError(
            f"no {fmt.title} training batches in {folder}: {_expected(fmt, folder.parent)}"
        )
    train_x, train_y = _read_split(fmt, folder, train_files)
    test_x, test_y = _read_split(fmt, folder, [fmt.test_file])
    missing = sorted(set(fmt.train_files) - set(train_files))
    if missing:  # a partial folder is worth a word at the default level: results depend on it
        logger.info(
            "%s: using %s: %s training images (%s absent from %s) + %s test images",
            fmt.name, ", ".join(train_files), f"{len(train_y):,}", ", ".join(missing), folder, f"{len(test_y):,}",
        )  # fmt: skip
    else:
        logger.debug("%s: %d train (%s) + %d test images from %s", fmt.name, len(train_y),
                     ", ".join(train_files), len(test_y), folder)
    return DataBundle(
        name=fmt.name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=fmt.num_classes,
        in_channels=3,
        input_size=32,
        mean=fmt.mean,
        std=fmt.std,
        augment=True,
        fingerprint=_fingerprint(folder, [*train_files, fmt.test_file]),
    )


def _fingerprint(folder: Path, files: list[str]) -> str:
    """sha256 over the names and contents of the files read (stored with each result row)."""
    import hashlib

    from ..references import file_sha256

    h = hashlib.sha256()
    for name in files:
        h.update(f"{name}\0{file_sha256(folder / name)}\n".encode())
    return "sha256:" + h.hexdigest()


def load_cifar10(data_dir: str | Path | None = None) -> DataBundle:
    """CIFAR-10 from ``data_dir`` (the parent of ``cifar-10-batches-py`` or that folder);
    any non-empty subset of ``data_batch_1..5`` plus ``test_batch``."""
    return _load(_CIFAR10, data_dir)


def load_cifar100(data_dir: str | Path | None = None) -> DataBundle:
    """CIFAR-100 (fine labels) from ``data_dir`` (the parent of ``cifar-100-python`` or
    that folder) holding ``train`` and ``test``."""
    return _load(_CIFAR100, data_dir)
