"""The asv suite (bench/benchmarks.py) runs: every benchmark once, on the quick grid.

Each benchmark is called the way asv calls it (setup_cache once per class, then
setup / benchmark / teardown per parameter combination), but only once and in this
process, so a broken benchmark fails the normal test run in seconds. A last test has
asv itself discover and check the suite (it imports every module in bench/).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("time_", "timeraw_", "peakmem_", "mem_", "track_")
GRID_ENV = {"SJLT_ASV_QUICK": "1", "SJLT_ASV_ARCHS": "", "SJLT_ASV_METHODS": ""}


def _load_suite():
    """Import bench/benchmarks.py with the quick grid (the grid is read at import)."""
    saved = {k: os.environ.get(k) for k in GRID_ENV}
    os.environ.update(GRID_ENV)
    try:
        spec = importlib.util.spec_from_file_location("sjlt_asv_benchmarks", ROOT / "bench" / "benchmarks.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


SUITE = _load_suite()


def _benchmarks() -> list[tuple[str, type | None, str]]:
    """(name, class or None, attribute) for every benchmark, as asv discovers them."""
    found = []
    for attr, obj in vars(SUITE).items():
        if attr.startswith("_"):
            continue
        if isinstance(obj, type) and obj.__module__ == SUITE.__name__:
            for member in sorted(vars(obj)):
                if member.startswith(PREFIXES) and callable(getattr(obj, member)):
                    found.append((f"{attr}.{member}", obj, member))
        elif callable(obj) and attr.startswith(PREFIXES):
            found.append((attr, None, attr))
    return found


BENCHMARKS = _benchmarks()


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def caches() -> dict:
    return {}


def _cache_for(owner, caches: dict):
    setup_cache = getattr(owner, "setup_cache", None)
    if setup_cache is None:
        return None
    key = owner.__name__
    if key not in caches:
        caches[key] = setup_cache(owner())
    return caches[key]


def test_quick_grid_is_one_arch_by_two_methods():
    assert SUITE.QUICK
    assert len(SUITE.ARCHS) == 1 and len(SUITE.METHODS) == 2
    names = {name.split(".")[-1] for name, _, _ in BENCHMARKS}
    assert {"time_train_step", "time_eval_step", "peakmem_train_step", "track_error",
            "track_energy_pj", "track_time_to_ticket", "track_model_bits"} <= names


@pytest.mark.parametrize("name,owner,attr", BENCHMARKS, ids=[b[0] for b in BENCHMARKS])
def test_benchmark_runs_once(name, owner, attr, caches):
    holder = owner if owner is not None else SUITE
    params = getattr(getattr(holder, attr), "params", None) or getattr(holder, "params", None) or ()
    if params and not isinstance(params[0], (list, tuple)):
        params = (params,)  # asv: a flat list is a single parameter
    cache = _cache_for(owner, caches) if owner is not None else None
    for combo in itertools.product(*params):
        instance = owner() if owner is not None else None
        lead = (cache,) if cache is not None else ()
        setup = getattr(instance if instance is not None else SUITE, "setup", None)
        if setup is not None:
            setup(*lead, *combo)
        try:
            value = getattr(instance if instance is not None else SUITE, attr)(*lead, *combo)
        finally:
            teardown = getattr(instance if instance is not None else SUITE, "teardown", None)
            if teardown is not None:
                teardown(*lead, *combo)
        if attr.startswith("track_"):
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{name}{combo} returned {value!r}"
            assert value >= 0, f"{name}{combo} returned {value!r}"


def test_asv_discovers_and_checks_the_suite():
    """asv's own discovery: imports every module in bench/ and checks signatures."""
    pytest.importorskip("asv")
    env = {**os.environ, **GRID_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "check", "--config", str(ROOT / "asv.conf.json"),
         "--environment", f"existing:{sys.executable}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "No problems found" in out, out[-4000:]
