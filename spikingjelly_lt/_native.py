"""Build and load the package's small C++ kernels once per machine (torch's cpp_extension).

A kernel is optional: without a compiler or torch headers the caller's torch path runs,
after one logged warning. Builds use ``-O3 -ffp-contract=off`` (no FMA contraction, so
every operation rounds like the torch op it replaces) and no ``-march=native``: the
build cache lives in the home folder and must stay valid when the CPU changes.

A build can never hang a run:

- it is announced (a log line: "building ... once") and runs in a child process in its own
  session, bounded by ``SJLT_KERNEL_BUILD_TIMEOUT`` seconds (default 600); on a timeout or
  Ctrl-C the child's whole process group (the compiler included) is killed, no orphans;
- torch's build lock (``<build dir>/lock``, a plain file that a killed build leaves behind
  and that makes every later ``load`` wait forever) is only ever touched while holding our
  own ``fcntl`` lock beside it, which the kernel releases when its owner dies: holding ours,
  a torch lock is known stale and removed;
- a failed build is remembered (a marker keyed by the source, torch and compiler versions)
  and not retried on every run until one of those changes.

:func:`kernel_status` says, per kernel, whether it is built, failed (and why) or not yet
built, for ``sjlt doctor``-style reports and for the warm-up before a run's timed steps.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

__all__ = ["load_kernel", "kernel_status", "build_timeout_s", "build_name", "KERNELS"]

log = logging.getLogger("spikingjelly_lt")

_CFLAGS = ["-O3", "-ffp-contract=off", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
_HERE = Path(__file__).parent
KERNELS = {  # name -> source: every native kernel of the package
    "sjlt_lif_train": _HERE / "neuron" / "_lif_train.cpp",
    "sjlt_deploy_lif": _HERE / "deploy" / "_lif_kernel.cpp",
}


def build_timeout_s() -> float:
    """Seconds a kernel build may take (``SJLT_KERNEL_BUILD_TIMEOUT``, default 600)."""
    try:
        return max(1.0, float(os.environ.get("SJLT_KERNEL_BUILD_TIMEOUT", "600")))
    except ValueError:
        return 600.0


def build_name(name: str, source: Path) -> str:
    """``name`` keyed by the source's content: checkouts with the same source share one build,
    and two checkouts (or commits) with different sources never rebuild over each other."""
    from .references import file_sha256

    return f"{name}_{file_sha256(source)[:10]}"


def _build_dir(name: str) -> Path:
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


@functools.lru_cache(maxsize=None)
def _toolchain() -> str:
    """The compiler's version line ('' without one): a new compiler may build what an old could not."""
    cxx = os.environ.get("CXX", "c++")
    if not shutil.which(cxx):
        return ""
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.splitlines() or [""])[0]


def _toolchain_key() -> str:
    """torch, compiler, Python and flags: the build folder is already keyed by the source (:func:`build_name`)."""
    import torch

    text = f"{torch.__version__}|{_toolchain()}|{sys.version_info[:2]}|{' '.join(_CFLAGS)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _failed_marker(name: str) -> Path:
    """The marker of a failed build of ``name`` (a :func:`build_name`) with this toolchain."""
    return _build_dir(name) / f"sjlt-build-failed-{_toolchain_key()}"


def _built(name: str, source: Path) -> bool:
    so = _build_dir(name) / f"{name}.so"
    return so.exists() and so.stat().st_mtime >= source.stat().st_mtime


@contextlib.contextmanager
def _exclusive(name: str):
    """Hold our lock on ``name``'s build folder; inside it a torch ``lock`` file is stale."""
    d = _build_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "sjlt.flock", "a+") as fh:
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("waiting for another process that is building the %s kernel", name)
                    waited = True
                time.sleep(0.2)  # interruptible
        try:
            stale = d / "lock"
            if stale.exists():
                log.warning("removing a stale build lock %s (left by a build that was killed)", stale)
                stale.unlink(missing_ok=True)
            yield d
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_CHILD = """
import sys
from torch.utils.cpp_extension import load
load(name=sys.argv[1], sources=[sys.argv[2]], extra_cflags=sys.argv[3].split(), extra_ldflags=sys.argv[4].split())
"""


def _build_in_child(name: str, source: Path, timeout: float) -> str | None:
    """Build ``name`` in a child process in its own session; None on success, else why not."""
    cmd = [sys.executable, "-c", _CHILD, name, str(source), " ".join(_CFLAGS), " ".join(_LDFLAGS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException as exc:  # timeout, Ctrl-C, SIGTERM: take the compiler down with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(OSError):
            (_build_dir(name) / "lock").unlink(missing_ok=True)
        if isinstance(exc, subprocess.TimeoutExpired):
            return f"the build took longer than {timeout:g} s (SJLT_KERNEL_BUILD_TIMEOUT)"
        raise
    if proc.returncode == 0:
        return None
    lines = [ln for ln in (out or "").splitlines() if "error" in ln.lower()] or (out or "").splitlines()[-1:]
    return (lines[0] if lines else f"exit status {proc.returncode}")[:200]


@functools.lru_cache(maxsize=None)
def load_kernel(name: str, source: str) -> ModuleType | None:
    """The extension built from ``source`` (a path) as ``name``, or None where it cannot build.

    Loading a kernel also turns on glibc heap reuse for the process
    (:func:`~spikingjelly_lt.hardware.keep_freed_memory`): the kernels write large fresh
    buffers inside their parallel loops, and without it every such buffer is a new ``mmap``
    whose pages fault in there (measured 5-7x slower than the torch ops on the 2-core Xeon).
    """
    src = Path(source)
    try:
        from torch.utils.cpp_extension import load

        name = build_name(name, src)
        marker = _failed_marker(name)
        if marker.exists():
            log.warning("native kernel %s unavailable (an earlier build failed: %s); using the torch path. "
                        "Remove %s to try again", name, marker.read_text().strip()[:160], marker)
            return None
        with _exclusive(name):
            if not _built(name, src):
                log.info("building the native kernel %s once (about 40 s; bounded by %g s)", name, build_timeout_s())
                t0 = time.perf_counter()
                why = _build_in_child(name, src, build_timeout_s())
                if why is not None:
                    marker.write_text(why + "\n")
                    log.warning("native kernel %s unavailable (%s); using the torch path", name, why)
                    return None
                log.info("built native kernel %s in %.1f s", name, time.perf_counter() - t0)
            kernel = load(name=name, sources=[str(src)], extra_cflags=_CFLAGS, extra_ldflags=_LDFLAGS)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - no compiler, no headers, no writable home: the torch path runs
        log.warning("native kernel %s unavailable (%s); using the torch path", name,
                    str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
        return None
    from .hardware import keep_freed_memory

    keep_freed_memory()
    return kernel


def kernel_status() -> dict[str, dict]:
    """Per native kernel: ``{"state": built | failed | not built, "reason": ..., "build_dir": ...}``."""
    out = {}
    for base_name, src in KERNELS.items():
        try:
            name = build_name(base_name, src)
            marker = _failed_marker(name)
            if marker.exists():
                out[base_name] = {"state": "failed", "reason": marker.read_text().strip(),
                                  "build_dir": str(marker.parent)}
            else:
                out[base_name] = {"state": "built" if _built(name, src) else "not built", "reason": None,
                                  "build_dir": str(_build_dir(name))}
        except Exception as exc:  # noqa: BLE001
            out[base_name] = {"state": "failed", "reason": str(exc)[:160], "build_dir": None}
    return out
