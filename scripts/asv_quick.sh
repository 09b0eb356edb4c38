#!/usr/bin/env bash
# CI hook for the asv suite (docs/asv.md), on the quick grid (SJLT_ASV_QUICK=1: vgg16 x
# {snn, binw-slt}), against the code importable in .venv. Three modes:
#
#   scripts/asv_quick.sh                     smoke: every benchmark once (asv run --quick)
#                                            on the working tree; exits non-zero if any
#                                            benchmark failed or did not run. asv itself can
#                                            exit 0 on some failures, so the results JSON is
#                                            checked too. Results: .asv/quick/.
#   scripts/asv_quick.sh compare BASE [HEAD] [options]
#                                            the gate: BASE vs HEAD (default HEAD), each
#                                            commit's code exported and benchmarked in
#                                            interleaved rounds; exits 1 when a deterministic
#                                            metric changed or a timing is slower beyond the
#                                            noise band (scripts/asv_gate.py). Results: .asv/gate/.
#   scripts/asv_quick.sh selftest [options]  the gate's proof: HEAD vs HEAD passes and HEAD
#                                            vs HEAD with SJLT_ASV_SLOWDOWN=2 is caught.
#
# Options of compare/selftest go to scripts/asv_gate.py (--rounds, --factor, --bench,
# --publish, --slowdown-head; see its --help). Quick-grid results never mix with the
# full-grid history in .asv/results.
# Needs: a git checkout, .venv with the package and asv (./scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$PWD/.venv/bin/python}
export SJLT_ASV_QUICK=1
case "${1:-}" in
    compare|selftest) exec "$PY" scripts/asv_gate.py "$@" --python "$PY" ;;
    "") ;;
    *) echo "usage: $0 [compare BASE [HEAD] | selftest] [gate options]" >&2; exit 2 ;;
esac
DIR=.asv/quick
CONF=$DIR/asv.conf.json
mkdir -p "$DIR"
rm -rf "$DIR/results"

# the project config with this run's own results/html directories; asv resolves
# paths from the config file's directory, so every path is made absolute
"$PY" - "$CONF" "$DIR" <<'PYEOF'
import json, os, sys
from asv import util
conf = util.load_json("asv.conf.json", js_comments=True)
conf.update(results_dir=os.path.join(sys.argv[2], "results"), html_dir=os.path.join(sys.argv[2], "html"))
for key in ("repo", "benchmark_dir", "results_dir", "html_dir"):
    conf[key] = os.path.abspath(conf[key])
conf["pythons"] = [os.path.abspath(p) if os.sep in p else p for p in conf.get("pythons", [])]
with open(sys.argv[1], "w") as f:
    json.dump(conf, f, indent=2)
PYEOF

"$PY" -m asv machine --yes --config "$CONF" >/dev/null
set +e
"$PY" -m asv run --config "$CONF" --quick --show-stderr \
    --environment "existing:$PY" --set-commit-hash "$(git rev-parse HEAD)" 2>&1 | tee "$DIR/run.log"
rc=${PIPESTATUS[0]}
set -e

# every discovered benchmark must have a finite value for every parameter combination
"$PY" - "$DIR/results" "$rc" <<'PYEOF'
import json, math, pathlib, sys
root, rc = pathlib.Path(sys.argv[1]), int(sys.argv[2])
problems = [] if rc == 0 else [f"asv run exited with status {rc}"]
bench_file = root / "benchmarks.json"
expected = {k for k in json.loads(bench_file.read_text()) if k != "version"} if bench_file.exists() else set()
if not expected:
    problems.append("no benchmarks discovered (see the asv output above)")
files = [p for p in root.glob("*/*.json") if p.name != "machine.json"]
if not files:
    problems.append(f"no results written under {root}")
for path in files:
    data = json.loads(path.read_text())
    cols = data["result_columns"]
    results = data.get("results", {})
    for name in sorted(expected - set(results)):
        problems.append(f"{name}: no result")
    for name, row in sorted(results.items()):
        entry = dict(zip(cols, row))
        values = entry.get("result")
        values = values if isinstance(values, list) else [values]
        bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and math.isnan(v))]
        if not values or len(bad) == len(values):
            problems.append(f"{name}: failed")
        elif bad:
            problems.append(f"{name}: failed for {len(bad)} of {len(values)} parameter combinations")
if problems:
    print("asv quick run FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"asv quick run ok: {len(expected)} benchmarks, results in {root}")
PYEOF
