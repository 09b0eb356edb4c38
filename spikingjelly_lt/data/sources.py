"""Data by reference: ``tensors:PATH``, ``imagefolder:DIR``, ``frames:PATH``, ``pkg.module:callable``.

:func:`dataset_reference` turns such a name into a loader (called like a registered
one, ``loader(data_dir) -> DataBundle``) that has already read and checked the data:
its ``fingerprint`` (sha256 of the files, or of the arrays a callable returns) joins
the cell's identity, so a changed file re-runs its cells. Reads are cached per
content. Bad input is one :class:`UsageError` naming the file and the problem.

- ``tensors:PATH``: a ``.npz`` or ``.pt`` holding ``x_train, y_train, x_test, y_test``
  (optional ``x_val, y_val``, optional ``num_classes``); images ``uint8`` (0..255) or
  float, ``[N, C, H, W]`` or ``[N, H, W, C]`` (the channel axis is the one of size <= 4;
  both or neither is refused as ambiguous) or ``[N, H, W]`` (one channel); square.
- ``imagefolder:DIR``: ``DIR/train/CLASS/*.png|jpg|jpeg|bmp`` and ``DIR/test/CLASS/...``
  read with Pillow; classes are the sorted train folder names; every image of one size.
- ``frames:PATH``: event frames ``[N, T, C, H, W]`` (SpikingJelly's ``data_type='frame'``
  layout) in a ``.npz`` / ``.pt`` with the same keys; T comes from the data, the frames
  are fed as they are (no normalization, no repeat encoding).
- ``pkg.module:callable`` (or ``file.py:callable``): returns a :class:`DataBundle`.

Labels are integers in ``[0, num_classes)``; ``num_classes`` is the stored value or the
largest label + 1. Images are normalized with the training split's per-channel mean and
std; no augmentation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..references import file_sha256, load_reference
from .bundle import DataBundle

__all__ = ["SCHEMES", "dataset_reference", "DataReference", "array_fingerprint"]

SCHEMES = ("tensors", "imagefolder", "frames")
_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DataReference:
    """A data set by reference, read and checked once: ``loader(data_dir) -> DataBundle``."""

    def __init__(self, name: str, bundle: DataBundle, source: dict):
        self.name, self.bundle, self.source = name, bundle, source
        self.fingerprint = bundle.fingerprint
        self.timesteps = bundle.timesteps
        self.takes_data_dir = False

    def __call__(self, data_dir: str | None = None) -> DataBundle:
        return self.bundle


_CACHE: dict[tuple, DataReference] = {}


def dataset_reference(name: str) -> DataReference:
    """The loader of a data set reference (module docstring), read and checked (cached per content)."""
    scheme, _, rest = name.partition(":")
    if scheme in SCHEMES:
        if not rest:
            raise UsageError(f"dataset {name!r}: give a path after '{scheme}:'")
        path = Path(rest).expanduser()
        if scheme == "imagefolder":
            if not path.is_dir():
                raise UsageError(f"dataset {name!r}: {path} is not a folder")
            key = (scheme, str(path.resolve()), _folder_stamp(path))
        else:
            if not path.is_file():
                raise UsageError(f"dataset {name!r}: file {path} does not exist")
            key = (scheme, str(path.resolve()), file_sha256(path))
        if key not in _CACHE:
            read = {"tensors": _read_tensors, "frames": _read_frames, "imagefolder": _read_imagefolder}[scheme]
            bundle = read(name, path)
            _CACHE[key] = DataReference(name, bundle, {"reference": name, "file": str(path.resolve()),
                                                       "fingerprint": bundle.fingerprint})
        return _CACHE[key]
    fn, source = load_reference(name, "dataset")
    key = ("callable", name, source.sha256)
    if key not in _CACHE:
        try:
            bundle = fn()
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code: one line
            raise UsageError(f"dataset {name!r}: calling it failed: {type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0][:200]}") from None
        if not isinstance(bundle, DataBundle):
            raise UsageError(f"dataset {name!r} returned {type(bundle).__name__}, not a "
                             "spikingjelly_lt.data.DataBundle")
        _check_labels(name, bundle.num_classes, {"y_train": bundle.train_y, "y_test": bundle.test_y})
        arrays = {"x_train": bundle.train_x, "y_train": bundle.train_y, "x_test": bundle.test_x,
                  "y_test": bundle.test_y, "x_val": bundle.val_x, "y_val": bundle.val_y}
        fp = array_fingerprint({k: v for k, v in arrays.items() if v is not None}, bundle.num_classes)
        import dataclasses

        bundle = dataclasses.replace(bundle, fingerprint=fp)
        _CACHE[key] = DataReference(name, bundle, {"reference": name, "file": source.file,
                                                   "sha256": source.sha256, "fingerprint": fp})
    return _CACHE[key]


def array_fingerprint(arrays: dict[str, torch.Tensor], num_classes: int) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes (and the class count)."""
    h = hashlib.sha256(f"classes={num_classes}\n".encode())
    for k in sorted(arrays):
        a = torch.as_tensor(arrays[k]).detach().cpu().contiguous()
        h.update(f"{k}:{a.dtype}:{tuple(a.shape)}\n".encode())
        h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.view(torch.int16).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _folder_stamp(path: Path) -> tuple:
    return tuple(sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in path.rglob("*") if p.is_file()))


def _load_arrays(name: str, path: Path) -> dict[str, np.ndarray]:
    where = f"dataset {name!r}: {path}"
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"{where} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    if path.suffix in (".pt", ".pth"):
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"{where} is not a readable torch file ({type(exc).__name__})") from None
        if not isinstance(d, dict):
            raise UsageError(f"{where} holds a {type(d).__name__}, not a dict of arrays")
        out = {}
        for k, v in d.items():
            out[k] = v.numpy() if torch.is_tensor(v) else np.asarray(v)
        return out
    raise UsageError(f"{where}: unknown file type {path.suffix!r}; valid: .npz, .pt")


def _splits(name: str, path: Path, arrays: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    where = f"dataset {name!r}: {path}"
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise UsageError(f"{where} lacks {', '.join(missing)} (needs x_train, y_train, x_test, y_test; "
                         f"has {', '.join(sorted(arrays)) or 'nothing'})")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise UsageError(f"{where} has only one of x_val, y_val")
    out = {}
    for split in ("train", "val", "test"):
        if f"x_{split}" not in arrays:
            continue
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UsageError(f"{where}: y_{split} must be a 1-D integer array, not {y.dtype} {list(y.shape)}")
        if len(x) != len(y):
            raise UsageError(f"{where}: x_{split} has {len(x)} samples but y_{split} has {len(y)} labels")
        if len(x) == 0:
            raise UsageError(f"{where}: x_{split} is empty")
        if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
            raise UsageError(f"{where}: x_{split} has dtype {x.dtype}; valid: uint8 or float")
        out[split] = (x, y)
    return out


def _num_classes(name: str, path: Path, arrays: dict, splits: dict) -> int:
    stored = arrays.get("num_classes")
    k = int(np.asarray(stored).item()) if stored is not None else 1 + max(int(y.max()) for _, y in splits.values())
    _check_labels(f"{name}", k, {f"y_{s}": torch.from_numpy(y) for s, (_, y) in splits.items()}, path)
    return k


def _check_labels(name: str, k: int, labels: dict, path: Path | None = None) -> None:
    where = f"dataset {name!r}" + (f": {path}" if path else "")
    if k < 2:
        raise UsageError(f"{where}: {k} class(es); a classifier needs at least 2")
    for key, y in labels.items():
        y = torch.as_tensor(y)
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise UsageError(f"{where}: {key} has labels outside [0, {k}) (min {int(y.min())}, max {int(y.max())})")


def _channels_first(name: str, path: Path, key: str, x: np.ndarray, lead: int) -> np.ndarray:
    """``x`` with ``lead`` leading dims then ``C, H, W`` (inferred layout, see module docstring)."""
    where = f"dataset {name!r}: {path}"
    dims = x.ndim - lead
    if dims == 2 and lead == 1:
        return x[:, None]
    if dims != 3:
        want = "[N, C, H, W], [N, H, W, C] or [N, H, W]" if lead == 1 else "[N, T, C, H, W]"
        raise UsageError(f"{where}: {key} has shape {list(x.shape)}; valid: {want}")
    a, _, c = x.shape[lead:]
    first, last = a <= 4, c <= 4
    if first == last:
        raise UsageError(f"{where}: {key} of shape {list(x.shape)} is ambiguous: cannot tell NCHW from NHWC "
                         "(exactly one of the channel axes must have size <= 4)")
    return x if first else np.moveaxis(x, -1, lead)


def _bundle(name: str, path: Path, arrays: dict, splits: dict, lead: int, fingerprint: str) -> DataBundle:
    where = f"dataset {name!r}: {path}"
    xs = {s: _channels_first(name, path, f"x_{s}", x, lead) for s, (x, _) in splits.items()}
    shapes = {s: x.shape[1:] for s, x in xs.items()}
    if len(set(shapes.values())) != 1:
        raise UsageError(f"{where}: splits differ in shape: " + ", ".join(f"x_{s} {list(v)}" for s, v in shapes.items()))
    shape = shapes["train"]
    c, h, w = shape[-3:]
    if h != w:
        raise UsageError(f"{where}: images are {h}x{w}; only square images are supported (resize them)")
    k = _num_classes(name, path, arrays, splits)
    frames = lead == 2

    def tensor(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x))
        return t.to(torch.float32) if (frames or t.dtype != torch.uint8) else t

    ts = {s: tensor(x) for s, x in xs.items()}
    ys = {s: torch.from_numpy(np.ascontiguousarray(y)).to(torch.int64) for s, (_, y) in splits.items()}
    if frames:
        mean, std = (0.0,) * c, (1.0,) * c  # event frames as they come
    else:
        x = ts["train"].to(torch.float32)
        if ts["train"].dtype == torch.uint8:
            x = x / 255.0
        mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
        std = tuple(float(v) if v > 1e-8 else 1.0 for v in x.std(dim=(0, 2, 3)))
    return DataBundle(name=name, train_x=ts["train"], train_y=ys["train"], test_x=ts["test"], test_y=ys["test"],
                      num_classes=k, in_channels=int(c), input_size=int(h), mean=mean, std=std, augment=False,
                      val_x=ts.get("val"), val_y=ys.get("val"), fingerprint=fingerprint,
                      timesteps=int(shape[0]) if frames else None)


def _read_tensors(name: str, path: Path) -> DataBundle:
    arrays = _load_arrays(name, path)
    return _bundle(name, path, arrays, _splits(name, path, arrays), 1, "sha256:" + file_sha256(path))


def _read_frames(name: str, path: Path) -> DataBundle:
    arrays = _load_arrays(name, path)
    splits = _splits(name, path, arrays)
    for s, (x, _) in splits.items():
        if x.ndim != 5:
            raise UsageError(f"dataset {name!r}: {path}: x_{s} has shape {list(x.shape)}; event frames are "
                             "[N, T, C, H, W]")
    return _bundle(name, path, arrays, splits, 2, "sha256:" + file_sha256(path))


def _read_imagefolder(name: str, path: Path) -> DataBundle:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise UsageError(f"dataset {name!r} needs Pillow (pip install pillow)") from None
    splits: dict[str, tuple[list, list]] = {}
    h = hashlib.sha256()
    classes: list[str] | None = None
    size, mode = None, None
    for split in ("train", "val", "test"):
        folder = path / split
        if not folder.is_dir():
            if split == "val":
                continue
            raise UsageError(f"dataset {name!r}: {folder} does not exist (expected {path}/{split}/CLASS/*.png)")
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if classes is None:
            classes = found
            if len(classes) < 2:
                raise UsageError(f"dataset {name!r}: {folder} has {len(classes)} class folder(s); need at least 2")
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise UsageError(f"dataset {name!r}: {folder} has classes not in train: {', '.join(unknown)}")
        xs, ys = [], []
        for label, cls in enumerate(classes):
            cdir = folder / cls
            if not cdir.is_dir():
                continue
            files = sorted(p for p in cdir.iterdir() if p.is_file())
            if not files and split == "train":
                raise UsageError(f"dataset {name!r}: class folder {cdir} is empty")
            for f in files:
                if f.suffix.lower() not in _IMAGE_SUFFIXES:
                    raise UsageError(f"dataset {name!r}: {f} is not an image file "
                                     f"(valid: {', '.join(_IMAGE_SUFFIXES)})")
                try:
                    with Image.open(f) as im:
                        im.load()
                        img = im.convert("L") if im.mode in ("L", "1", "I;16", "I") else im.convert("RGB")
                except (UnidentifiedImageError, OSError) as exc:
                    raise UsageError(f"dataset {name!r}: {f} is not a readable image ({exc})") from None
                if size is None:
                    size, mode = img.size, img.mode
                if img.size != size:
                    raise UsageError(f"dataset {name!r}: {f} is {img.size[0]}x{img.size[1]}, the others "
                                     f"{size[0]}x{size[1]}; resize them to one size")
                if img.mode != mode:
                    img = img.convert("RGB")
                    if mode == "L":
                        raise UsageError(f"dataset {name!r}: {f} is color, earlier images grayscale; "
                                         "store one kind")
                a = np.asarray(img, dtype=np.uint8)
                xs.append(a if a.ndim == 3 else a[:, :, None])
                ys.append(label)
                h.update(f"{split}/{cls}/{f.name}\0{file_sha256(f)}\n".encode())
        if not xs:
            raise UsageError(f"dataset {name!r}: {folder} holds no images")
        splits[split] = (np.stack(xs).transpose(0, 3, 1, 2), np.asarray(ys, dtype=np.int64))
    arrays = {f"x_{s}": v[0] for s, v in splits.items()} | {f"y_{s}": v[1] for s, v in splits.items()}
    arrays["num_classes"] = np.asarray(len(classes))
    return _bundle(name, path, arrays, splits, 1, "sha256:" + h.hexdigest())
