"""The example plugin as a user installs it: built as a wheel, installed into a fresh venv.

The fresh venv sees the main environment's packages (torch, spikingjelly, the editable
spikingjelly-lt) through one ``.pth`` line, ``import site; site.addsitedir(...)``. Its own
site-packages come first on ``sys.path``, so its wheel-installed ``sjlt-random-prune``
is the distribution that ``importlib.metadata`` finds (it keeps the first of each name)
and the module that imports, even beside the editable install of the main venv. The
test checks both before it believes anything else.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "sjlt-random-prune"
VERSION = "0.2.0"


def _run(cmd, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SJLT_DISABLE_ENTRY_POINTS")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """(python of a fresh venv with the plugin wheel installed, a work folder outside the tree)."""
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        pytest.skip("the venv / ensurepip module is unavailable in this Python")
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("pip or setuptools is not installed in the test environment")
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # build from a copy: no build/ or egg-info lands in the source tree
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__"))
    _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--no-build-isolation",
          "-w", base / "dist", src], cwd=base)
    wheels = list((base / "dist").glob("sjlt_random_prune-*.whl"))
    assert [w.name for w in wheels] == [f"sjlt_random_prune-{VERSION}-py3-none-any.whl"]
    venv = base / "fresh"
    _run([sys.executable, "-m", "venv", venv], cwd=base)
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).stdout.strip()
    main_site = sysconfig.get_paths()["purelib"]
    (Path(site) / "_sjlt_main_env.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    _run([py, "-m", "pip", "--disable-pip-version-check", "install", "--no-deps", "--no-index", wheels[0]], cwd=base)
    work = base / "work"
    work.mkdir()
    return py, Path(site), work


def test_fresh_venv_wheel_plugin_is_listed_and_runs_in_bench(fresh_venv):
    py, site, work = fresh_venv
    # 1. the wheel's distribution and module win over the main venv's editable install
    probe = _run([py, "-c", """
import importlib.metadata as md, json, sjlt_random_prune, spikingjelly_lt
eps = [e for e in md.entry_points(group="spikingjelly_lt") if e.name == "random_prune"]
print(json.dumps({"module": sjlt_random_prune.__file__, "core": spikingjelly_lt.__file__,
                  "eps": [(e.dist.name, e.dist.version, str(e.dist.locate_file(""))) for e in eps]}))
"""], cwd=work).stdout
    found = json.loads(probe.strip().splitlines()[-1])
    assert found["module"].startswith(str(site)), found
    assert len(found["eps"]) == 1 and found["eps"][0][:2] == ["sjlt-random-prune", VERSION], found
    assert found["eps"][0][2].startswith(str(site)), found
    assert not found["core"].startswith(str(site))  # the core comes from the main environment

    # 2. `sjlt plugins --json` lists it with its distribution, version and pruner names
    listing = json.loads(_run([py, "-m", "spikingjelly_lt", "plugins", "--json"], cwd=work).stdout)
    row = next(p for p in listing["plugins"] if p["name"] == "random_prune")
    print("plugins:", json.dumps(row))
    assert (row["distribution"], row["version"], row["hooks"]) == ("sjlt-random-prune", VERSION, ["register_pruners"])
    pruners = listing["registered"]["pruners"]
    assert {n for n, p in pruners.items() if p == "random_prune"} == {"random", "random-reinit", "random-prune"}

    # 3. `sjlt bench` runs both controls; every row says which distribution made its pruner
    db = work / "R.db"
    out = _run([py, "-m", "spikingjelly_lt", "bench", "--methods", "random-reinit,random-prune", "--epochs", "1",
                "--set", "model.width=0.0625", "--set", "model.timesteps=2", "--set", "data.limit_train=256",
                "--set", "data.limit_test=128", "--threads", "1", "--device", "cpu", "--results", db, "--json"],
               cwd=work, timeout=600).stdout
    outcomes = json.loads(out)["cells"]
    assert [o["status"] for o in outcomes] == ["done", "done"], [o.get("reason") for o in outcomes]
    from spikingjelly_lt.results.store import ResultStore

    with ResultStore(db) as store:
        rows = {r["cell"]["method"]["name"]: r for r in store.rows()}
    assert set(rows) == {"random-reinit", "random-prune"}
    for name, r in rows.items():
        made_by = r["cell"]["plugins"]["pruner"]
        print(f"{name}: pruner {json.dumps(made_by)}; metrics.pruner {json.dumps(r['metrics']['pruner'])}")
        assert made_by == {"name": name, "plugin": "random_prune", "distribution": "sjlt-random-prune",
                           "version": VERSION}
        assert r["cell"]["pruner_class"].startswith("sjlt_random_prune.")
        described = r["metrics"]["pruner"]
        assert described["control"] == name and described["training_runs"] == 3  # imp_rounds 2 (default): K + 1 runs
        assert described["kept"] and sum(described["kept"].values()) == sum(described["ticket_kept"].values())
        assert r["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert rows["random-reinit"]["metrics"]["pruner"]["reinit_seed"] is not None
    assert rows["random-prune"]["metrics"]["pruner"]["mask_seed"] is not None
