"""Build and load the package's small C++ kernels once per machine (torch's cpp_extension).

A kernel is optional: without a compiler or torch headers the caller's torch path runs,
after one logged warning. Builds use ``-O3 -ffp-contract=off`` (no FMA contraction, so
every operation rounds like the torch op it replaces) and no ``-march=native``: the
build cache lives in the home folder and must stay valid when the CPU changes.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import ModuleType

__all__ = ["load_kernel"]

log = logging.getLogger("spikingjelly_lt")


@functools.lru_cache(maxsize=None)
def load_kernel(name: str, source: str) -> ModuleType | None:
    """The extension built from ``source`` (a path) as ``name``, or None where it cannot build.

    Loading a kernel also turns on glibc heap reuse for the process
    (:func:`~spikingjelly_lt.hardware.keep_freed_memory`): the kernels write large fresh
    buffers inside their parallel loops, and without it every such buffer is a new ``mmap``
    whose pages fault in there (measured 5-7x slower than the torch ops on the 2-core Xeon).
    """
    try:
        from torch.utils.cpp_extension import load

        kernel = load(name=name, sources=[str(Path(source))],
                      extra_cflags=["-O3", "-ffp-contract=off", "-fopenmp"], extra_ldflags=["-fopenmp"])
    except Exception as exc:  # noqa: BLE001 - no compiler, no headers: the torch path runs
        log.warning("native kernel %s unavailable (%s); using the torch path", name,
                    str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
        return None
    from .hardware import keep_freed_memory

    keep_freed_memory()
    return kernel
