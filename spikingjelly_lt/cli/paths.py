"""Paths a command reads or writes, checked before any work (one clear UsageError each), and the
atomic text writer."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError

__all__ = ["check_input_file", "check_output_file", "check_output_dir", "atomic_text_writer"]


def _probe_writable(folder: Path) -> str | None:
    """None if a file can be created in ``folder`` (tried for real: root, read-only mounts), else why."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sjlt-probe-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_input_file(path, what: str) -> Path:
    """A file the command reads: exists, is a file, can be opened; else one clear error."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    if p.is_dir():
        raise UsageError(f"{what} {p} is a directory, not a file")
    _opens(p, "rb", f"{what} {p} cannot be read")
    return p


def _opens(p: Path, mode: str, message: str) -> None:
    """Open ``p`` in ``mode`` (reading or appending nothing) or raise one UsageError."""
    try:
        with p.open(mode):
            pass
    except OSError as exc:
        raise UsageError(f"{message} ({exc.strerror or exc})") from None


def check_output_file(path, what: str, *, protect=()) -> Path:
    """A file the command writes: not a folder, not one of its inputs, its folder creatable and writable.

    Checked before any work, so a bad path never costs a run and never touches a file.
    """
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {p} is a directory; give a file name")
    for q in protect:
        if q is not None and p.exists() and Path(q).exists() and p.samefile(q):
            raise UsageError(f"{what} {p} is also an input of this command; refusing to overwrite it")
    _writable_folder(p.parent, f"{what} {p}: cannot create folder {p.parent}",
                     f"{what} {p}: cannot write in folder {p.parent}")
    if p.exists():
        _opens(p, "ab", f"{what} {p} is not writable")
    return p


def check_output_dir(path, what: str) -> Path:
    """A folder the command writes into (created if missing)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {p} exists and is not a folder")
    _writable_folder(p, f"{what} {p}: cannot create it", f"{what} {p}: cannot write in it")
    return p


def _writable_folder(folder: Path, cannot_create: str, cannot_write: str) -> None:
    """Create ``folder`` if missing and prove a file can be written in it (else one UsageError)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{cannot_create} ({exc.strerror or exc})") from None
    why = _probe_writable(folder)
    if why:
        raise UsageError(f"{cannot_write} ({why})")


@contextmanager
def atomic_text_writer(path: Path):
    """Write a text file through a temp file and a rename: an error leaves the old file whole."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
