"""Objects named by reference: ``path/to/file.py:callable`` or ``pkg.module:callable``.

The one loader behind ``--arch FILE.py:make``, ``--dataset pkg.mod:load`` and ``--plugin``.
A reference resolves to the object and a :class:`Source`: the reference as given, the
file that defines it and that file's sha256 (which joins a cell's identity, so an edited
file re-runs its cells). A file is imported once per content: an edited file (new size,
mtime or hash) is imported again. Anything wrong is one :class:`UsageError` line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UsageError

__all__ = ["Source", "is_reference", "load_reference", "import_module_or_file", "file_sha256"]


@dataclass(frozen=True)
class Source:
    """Where a referenced object comes from: ``reference``, defining ``file`` and its ``sha256``."""

    reference: str
    file: str | None
    sha256: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``module:callable`` / ``file.py:callable`` reference (not a registered name)."""
    return isinstance(name, str) and ":" in name


_SHA: dict[tuple, str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, cached while its size and mtime stay the same."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA[key] = h.hexdigest()
    return _SHA[key]


_FILE_MODULES: dict[tuple[str, str], object] = {}


def import_module_or_file(target: str, what: str):
    """Import ``pkg.module`` or the Python file ``path/to/file.py``; returns ``(module, file path or None)``."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        p = Path(target).expanduser()
        if not p.is_file():
            raise UsageError(f"cannot load {what} {target!r}: file {p} does not exist")
        if p.suffix != ".py":
            raise UsageError(f"{what} {target!r}: {p} is not a .py file")
        path = str(p.resolve())
        digest = file_sha256(p)
        key = (path, digest)
        if key not in _FILE_MODULES:
            name = f"sjlt_user_{p.stem}_{digest[:12]}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up here
            folder = str(p.resolve().parent)
            added = folder not in sys.path
            if added:
                sys.path.insert(0, folder)  # a file may import its neighbours
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - the user's code: one line, not a traceback
                sys.modules.pop(name, None)
                raise UsageError(f"{what} {target!r}: importing {p} failed: {type(exc).__name__}: "
                                 f"{_first_line(exc)}") from None
            finally:
                if added:
                    sys.path.remove(folder)
            _FILE_MODULES[key] = module
        return _FILE_MODULES[key], path
    try:
        module = importlib.import_module(target)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"cannot load {what} {target!r}: cannot import module {target!r} ({type(exc).__name__}: "
                         f"{_first_line(exc)})") from None
    return module, getattr(module, "__file__", None)


def load_reference(ref: str, what: str = "reference") -> tuple[object, Source]:
    """``'file.py:make'`` or ``'pkg.mod:make'`` (``make`` may be dotted: ``Class.factory``) -> (object, Source)."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(f"{what} {ref!r} must look like path/to/file.py:callable or pkg.module:callable")
    module, path = import_module_or_file(target, what)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"cannot load {what} {ref!r}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{what} {ref!r}: {attr} is not callable")
    sha = file_sha256(path) if path and Path(path).is_file() else None
    return obj, Source(ref, path, sha)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
