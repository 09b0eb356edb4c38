"""The package as a user gets it: its metadata, its sdist, and its wheel in a fresh venv.

The wheel test builds ``spikingjelly_lt-*.whl`` from a copy of the tracked tree and
installs it (not editable) into a fresh venv through the offline route,
``VENV=... SJLT_WHEEL=... scripts/install.sh``, with ``PIP_NO_INDEX=1``: nothing may be
fetched. The fresh venv sees, through one ``.pth`` line, a folder of links to the main
environment's packages (torch 2.13.0+cpu, the pinned requirements, spikingjelly) but
not to spikingjelly-lt itself nor the example plugin, so every requirement install.sh
names is already satisfied and the only thing it installs is the wheel. Then
``sjlt --version``, ``sjlt plugins --json`` and a one-epoch digits ``sjlt train`` run
from a folder outside the source tree.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = __import__("spikingjelly_lt").__version__
# imported only by spikingjelly_lt's optional parts, each behind an extra or a hint
OPTIONAL_IMPORTS = {"nir": "nir", "nirtorch": "nir", "tensorboard": "tensorboard"}


def _tracked_files() -> list[str]:
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        return [f for f in out if f and (ROOT / f).is_file()]
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]


def _copy_tree(dest: Path) -> Path:
    for rel in _tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dest


def _build(kind: str, tmp: Path) -> Path:
    """Build the wheel or sdist with setuptools' PEP 517 backend (no isolation, offline)."""
    src = _copy_tree(tmp / "src")
    code = f"from setuptools import build_meta as b; print(b.build_{kind}({str(tmp / 'dist')!r}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "dist" / proc.stdout.strip().splitlines()[-1]


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules spikingjelly_lt imports (absolute imports), and which files do."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "spikingjelly_lt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("spikingjelly_lt", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _req_name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_metadata_license_urls_version_and_extras():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert {"Homepage", "Issues"} <= set(project["urls"])
    assert project["dynamic"] == ["version"] and "version" not in project
    assert {"test", "tensorboard", "nir"} <= set(project["optional-dependencies"])
    assert md.version("spikingjelly-lt") == VERSION


def test_dependencies_are_exactly_what_the_package_imports():
    """Every third-party import is declared (or in an extra); nothing undeclared, nothing extra.

    SpikingJelly is imported but deliberately not declared: its metadata requires
    torchvision and torchaudio, which would make pip replace the user's torch build.
    """
    imports = _third_party_imports()
    dist_of = md.packages_distributions()
    declared = {_req_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {k: {_req_name(r) for r in v} for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    needed = set()
    for top, files in imports.items():
        if top == "spikingjelly":
            continue
        if top in OPTIONAL_IMPORTS:
            assert _req_name(top) in extras[OPTIONAL_IMPORTS[top]], (top, files)
            continue
        dists = {d.lower().replace("_", "-") for d in dist_of.get(top, [top])}
        assert dists & declared, f"{top} (imported by {sorted(files)}) is not in pyproject dependencies"
        needed |= dists & declared
    assert "spikingjelly" not in declared, "declaring spikingjelly pulls torchvision/torchaudio and a new torch"
    assert "spikingjelly" in imports
    assert declared == needed, f"declared but never imported: {sorted(declared - needed)}"


def test_sdist_holds_everything_its_tests_and_install_need(tmp_path):
    sdist = _build("sdist", tmp_path)
    assert sdist.name == f"spikingjelly_lt-{VERSION}.tar.gz"
    prefix = f"spikingjelly_lt-{VERSION}/"
    with tarfile.open(sdist) as tar:
        names = {n[len(prefix):] for n in tar.getnames() if n.startswith(prefix)}
    required = {"LICENSE", "README.md", "pyproject.toml", "requirements-cpu.txt", "scripts/install.sh",
                "plugins/sjlt-random-prune/pyproject.toml", "tests/conftest.py", "asv.conf.json"}
    tracked = set(_tracked_files())
    required |= {f for f in tracked if f.startswith(("tests/", "scripts/", "plugins/", "spikingjelly_lt/", "bench/"))
                 and f.endswith((".py", ".sh", ".toml"))}
    missing = sorted(required - names)
    assert not missing, f"sdist lacks {missing}"
    assert any(n.startswith("tests/data/") and n.endswith(".py") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _visible_env(dest: Path) -> Path:
    """Links to the main environment's packages, without spikingjelly-lt and its plugin."""
    main_site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    skip = re.compile(r"(spikingjelly_lt|sjlt_random_prune|__editable__|^pip$|^pip-|^_distutils_hack|\.pth$)")
    for entry in main_site.iterdir():
        if not skip.search(entry.name):
            (dest / entry.name).symlink_to(entry)
    return dest


def test_wheel_installs_through_the_offline_route_and_runs_outside_the_tree(tmp_path):
    if importlib.util.find_spec("ensurepip") is None:
        pytest.skip("ensurepip is unavailable in this Python")
    wheel = _build("wheel", tmp_path)
    assert wheel.name == f"spikingjelly_lt-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:  # the C++ kernels' sources ship, to be built on the user's machine
        sources = {n for n in z.namelist() if n.endswith(".cpp")}
    assert sources == {"spikingjelly_lt/deploy/_lif_kernel.cpp", "spikingjelly_lt/neuron/_lif_train.cpp"}, sources
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SJLT_DISABLE_ENTRY_POINTS",
                                                             "SJLT_LOAD_PLUGINS", "PIP_INDEX_URL")}
    env |= {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    venv = tmp_path / "fresh"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip())
    # the venv's own (older) setuptools would shadow the main env's, which torch's metadata needs
    _run([py, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"], tmp_path, env)
    visible = _visible_env(tmp_path / "visible")
    (site / "_sjlt_visible.pth").write_text(f"import site; site.addsitedir({str(visible)!r})\n")

    # what a plain `pip install WHEEL` would do here: install the wheel, nothing else (no new torch)
    report = tmp_path / "plan.json"
    _run([py, "-m", "pip", "install", "--dry-run", "--quiet", "--report", report, wheel], tmp_path, env)
    plan = sorted(i["metadata"]["name"] for i in json.loads(report.read_text())["install"])
    assert plan == ["spikingjelly-lt"], plan

    # the offline route, with the wheel instead of the editable tree
    src = tmp_path / "src"
    _run(["bash", src / "scripts" / "install.sh"], src, env | {"VENV": str(venv), "SJLT_WHEEL": str(wheel)}, timeout=600)
    sjlt = venv / "bin" / "sjlt"
    work = tmp_path / "work"
    work.mkdir()
    where = _run([py, "-c", "import spikingjelly_lt, torch; print(spikingjelly_lt.__file__, torch.__version__)"], work, env)
    module, torch_version = where.stdout.split()
    assert module.startswith(str(site)) and torch_version.endswith("+cpu"), where.stdout

    version = _run([sjlt, "--version"], work, env).stdout
    assert version.startswith(f"sjlt {VERSION} ") and "torch 2." in version, version
    listing = json.loads(_run([sjlt, "plugins", "--json"], work, env).stdout)
    assert {"digits", "cifar10"} <= set(listing["registered"]["datasets"])
    assert "binw-slt" in _run([sjlt, "methods"], work, env).stdout
    out = _run([sjlt, "train", "--method", "ann", "--epochs", "1", "--set", "model.width=0.0625",
                "--set", "data.limit_train=256", "--set", "data.limit_test=128", "--device", "cpu",
                "--results", "R.db", "--json"], work, env, timeout=600).stdout
    (outcome,) = json.loads(out)["cells"]
    assert outcome["status"] == "done" and 0.0 <= outcome["metrics"]["top1"] <= 1.0, outcome
    assert (work / "R.db").is_file() and not list(ROOT.glob("R.db"))
