"""The asv suite (bench/benchmarks.py), its gate and its dashboard.

Each benchmark is called the way asv calls it (setup_cache once per class, then
setup / benchmark / teardown per parameter combination), but only once and in this
process, so a broken benchmark fails the normal test run in seconds; asv itself then
discovers and checks the suite (it imports every module in bench/). The gate's rule
(scripts/asv_gate.py) is checked on synthetic results, and once end to end with asv on
a one-benchmark grid: the same code twice passes, an injected 2x slowdown is caught;
the dashboard published from those results loads no remote script (docs/asv.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("time_", "timeraw_", "peakmem_", "mem_", "track_")
GRID_ENV = {"SJLT_ASV_QUICK": "1", "SJLT_ASV_ARCHS": "", "SJLT_ASV_METHODS": "", "SJLT_ASV_SLOWDOWN": ""}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _load_suite():
    """Import bench/benchmarks.py with the quick grid (the grid is read at import)."""
    saved = {k: os.environ.get(k) for k in GRID_ENV}
    os.environ.update(GRID_ENV)
    try:
        return _load(ROOT / "bench" / "benchmarks.py", "sjlt_asv_benchmarks")
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
    assert {"time_train_step", "time_eval_step", "track_step_memory", "track_error",
            "track_energy_pj", "track_time_to_ticket", "track_model_bits"} <= names
    assert not any(n.startswith("peakmem_") for n in names)  # whole-process RSS: not a model quantity
    assert SUITE.SLOWDOWN == 1.0  # the test-only slowdown is off unless asked for


@pytest.mark.parametrize("name,owner,attr", BENCHMARKS, ids=[b[0] for b in BENCHMARKS])
def test_benchmark_explains_itself(name, owner, attr):
    """What the dashboard and asv compare show: a pretty_name that says what, in which
    unit and which way is better; the docstring is the dashboard's tooltip."""
    func = getattr(owner, attr) if owner is not None else getattr(SUITE, attr)
    pretty = getattr(func, "pretty_name", "")
    assert "lower is better" in pretty or "higher is better" in pretty, f"{name}: pretty_name {pretty!r}"
    assert not set("<>&") & set(pretty), f"{name}: the dashboard inserts pretty_name as HTML"
    assert func.__doc__ and len(func.__doc__.split()) >= 8, f"{name}: no docstring"
    if attr.startswith("track_"):
        assert getattr(func, "unit", None), f"{name}: a track_ benchmark needs a unit"


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
            assert value == round(value, 3), f"{name}{combo} returned {value!r}: round it to what it resolves"


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


def test_step_memory_is_the_model_not_the_process():
    """Weights + saved activations of one step: deterministic, and far below the ~350 MB
    the interpreter and torch make a peak-RSS number."""
    bench = SUITE.TrainStep()
    bench.setup("vgg16", "snn")
    mem = bench.fx.step_memory()
    weights = sum(p.numel() * p.element_size() for p in bench.fx.model.parameters())
    assert mem["weights"] >= weights > 0 and mem["activations"] > 0
    # activations scale with the batch: at least the input of every timestep is saved
    assert mem["activations"] >= SUITE.BATCH * SUITE.IN_CHANNELS * SUITE.INPUT_SIZE ** 2 * 4
    total = bench.track_step_memory("vgg16", "snn")
    assert total == mem["weights"] + mem["activations"] < 64 * 2 ** 20
    assert bench.track_step_memory("vgg16", "snn") == total  # exact: the gate compares it with ==


def test_slowdown_knob_makes_a_time_benchmark_that_many_times_slower(monkeypatch):
    class Clock:
        now = 0.0
        slept: list = []

        def perf_counter(self):
            return self.now

        def sleep(self, seconds):
            self.slept.append(seconds)

    clock = Clock()

    def step():
        clock.now += 0.02

    monkeypatch.setattr(SUITE, "time", clock)
    SUITE._slowed(step)
    assert clock.slept == []  # off by default
    monkeypatch.setattr(SUITE, "SLOWDOWN", 2.0)
    SUITE._slowed(step)
    assert clock.slept == [pytest.approx(0.02)]  # (2 - 1) x the step's own 20 ms


# ------------------------------------------------------------------ the gate's rule

GATE = _load(ROOT / "scripts" / "asv_gate.py", "sjlt_asv_gate")


def _entries(**kw) -> dict:
    return {(name, "vgg16, snn"): GATE.Entry(value, samples, unit) for name, (value, samples, unit) in kw.items()}


def _verdicts(base: dict, head: dict) -> dict:
    return {r.name: r.verdict for r in GATE.judge(base, head, factor=1.5)}


def test_gate_passes_noise_and_catches_a_2x_slowdown():
    fast = [0.010, 0.0102, 0.0101, 0.0104, 0.0099, 0.0105]
    # a busy neighbour: most samples 1.6x slower, the fastest ones untouched
    noisy = [0.0100, 0.0101, 0.016, 0.0165, 0.017, 0.0162]
    slow = [2 * x for x in fast]
    name = "benchmarks.TrainStep.time_train_step"
    assert _verdicts(_entries(**{name: (0.0101, fast, "seconds")}), _entries(**{name: (0.016, noisy, "seconds")})) \
        == {"TrainStep.time_train_step": "same"}
    rows = GATE.judge(_entries(**{name: (0.0101, fast, "seconds")}), _entries(**{name: (0.0202, slow, "seconds")}))
    assert [r.verdict for r in rows] == ["SLOWER"] and rows[0].bad
    rows = GATE.judge(_entries(**{name: (0.0202, slow, "seconds")}), _entries(**{name: (0.0101, fast, "seconds")}))
    assert [r.verdict for r in rows] == ["faster"] and not rows[0].bad


def test_gate_compares_metrics_exactly_and_flags_failures():
    base = _entries(**{"benchmarks.TrainedCell.track_error": (69.72, [], "%"),
                       "benchmarks.TrainedCell.track_energy_pj": (130499.005, [], "pJ/image"),
                       "benchmarks.TrainedCell.track_time_to_ticket": (0.8, [], "s"),
                       "benchmarks.TrainedCell.track_model_bits": (529424, [], "bits")})
    head = dict(base)
    head.update(_entries(**{"benchmarks.TrainedCell.track_energy_pj": (130499.006, [], "pJ/image"),
                            "benchmarks.TrainedCell.track_time_to_ticket": (2.4, [], "s"),
                            "benchmarks.TrainedCell.track_model_bits": (None, [], "bits")}))
    rows = {r.name: r for r in GATE.judge(base, head)}
    assert rows["TrainedCell.track_error"].verdict == "same"
    assert rows["TrainedCell.track_energy_pj"].verdict == "CHANGED"  # 1 fJ is a change, not noise
    assert "130,499.005" in rows["TrainedCell.track_energy_pj"].base  # shown with every digit
    assert rows["TrainedCell.track_time_to_ticket"].verdict == "info"  # one wall-clock sample: never gated
    assert rows["TrainedCell.track_model_bits"].verdict == "FAILED"
    report = GATE.render(list(rows.values()), "t", 1.5)
    assert "**FAIL**" in report and "1 deterministic metric(s) changed, 1 failed" in report
    assert "**PASS**" in GATE.render([rows["TrainedCell.track_error"]], "t", 1.5)


# ------------------------------------------------------------------ the dashboard

VENDOR = ROOT / "bench" / "asv_vendor"
PUBLISH = _load(ROOT / "scripts" / "asv_publish.py", "sjlt_asv_publish")


def test_vendored_libraries_are_the_npm_files_with_their_licences():
    table = json.loads((VENDOR / "vendor.json").read_text())
    for url, item in table["cdn"].items():
        path = VENDOR / item["local"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["sha256"], url
        assert (VENDOR / item["license_file"]).is_file() and "MIT" in item["license"]
        assert "permission is hereby granted" in (VENDOR / item["license_file"]).read_text().lower()
    for rel, digest in table["also_copied"].items():  # bootstrap's fonts, named by its CSS
        assert hashlib.sha256((VENDOR / rel).read_bytes()).hexdigest() == digest


def test_every_cdn_reference_of_asvs_index_is_vendored(tmp_path):
    """The installed asv's own index.html: each remote <script>/<link> maps to a file."""
    asv = pytest.importorskip("asv")
    www = Path(asv.__file__).parent / "www"
    remote = PUBLISH.remote_resources((www / "index.html").read_text())
    assert remote and all(u.startswith("https://") for u in remote)  # what needs vendoring
    shutil.copytree(www, tmp_path / "html")
    rewritten = PUBLISH.vendorize(tmp_path / "html")
    assert sorted(rewritten) == sorted(remote)
    html = (tmp_path / "html" / "index.html").read_text()
    assert PUBLISH.remote_resources(html) == [] and "integrity=" not in html
    for url in remote:
        local = json.loads((VENDOR / "vendor.json").read_text())["cdn"][url]["local"]
        assert f'"vendor/{local}"' in html and (tmp_path / "html" / "vendor" / local).is_file()
    assert PUBLISH.vendorize(tmp_path / "html") == []  # idempotent
    # the check itself bites: a page with a CDN script fails
    (tmp_path / "html" / "extra.html").write_text('<script src="https://cdn.example/x.js"></script>')
    with pytest.raises(RuntimeError, match="cdn.example"):
        PUBLISH.vendorize(tmp_path / "html")


def test_gate_selftest_and_offline_dashboard_end_to_end(tmp_path):
    """scripts/asv_quick.sh selftest on one timing and one exact benchmark (vgg16 x snn,
    2 rounds; about a minute on 2 cores): HEAD vs HEAD passes, HEAD vs HEAD with
    SJLT_ASV_SLOWDOWN=2 is caught. Then the dashboard published from those results
    loads every script locally, and the environment is keyed by the Python version."""
    pytest.importorskip("asv")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    out = tmp_path / "gate"
    env = {**os.environ, **GRID_ENV, "SJLT_ASV_METHODS": "snn"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "asv_quick.sh"), "selftest", "--rounds", "2", "--out", str(out),
         "--bench", r"EvalStep\.time_eval_step|TrainStep\.track_step_memory"],
        cwd=ROOT, env={**env, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "self-test passed" in proc.stdout, text[-6000:]
    assert "| !! | EvalStep.time_eval_step" in proc.stdout  # the slowed side, flagged
    assert "SLOWER" in proc.stdout and "TrainStep.track_step_memory" in proc.stdout
    results = sorted((out / "results-base").glob("*/*-existing-*.json"))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    # keyed by the Python version, not the interpreter's path (scripts/asv_stable_env.py)
    assert [p.name.split("-", 1)[1] for p in results] == [f"existing-py{version}.json"]
    assert json.loads(results[0].read_text())["params"]["python"] == version  # the graphs' key

    config = out / "asv.conf.results-base.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "asv_publish.py"), "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = (out / "html" / "index.html").read_text()
    assert "<script" in index and PUBLISH.remote_resources(index) == []
    assert not [line for line in index.splitlines() if "<script" in line and ("http://" in line or "https://" in line)]
    assert (out / "html" / "vendor" / "jquery" / "jquery.min.js").is_file()
    graphs = list((out / "html" / "graphs").rglob("*.json"))
    assert any("time_eval_step" in str(p) for p in graphs)
