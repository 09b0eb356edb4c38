#!/usr/bin/env bash
# CPU / offline install of spikingjelly-lt into ./.venv (idempotent).
# VENV=DIR picks the venv; SJLT_WHEEL=dist/spikingjelly_lt-*.whl installs that wheel instead of -e .
# torch is pinned to the CPU build; spikingjelly goes in with --no-deps so that its
# declared torchvision/torchaudio never pull a CUDA torch. Never gate on `pip check`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install -r requirements-cpu.txt
$PIP install --no-deps "spikingjelly==2.0.0"
# NeuroBench (energy cross-check in tests/test_energy_crosscheck.py): --no-deps, because
# its tonic dependency pulls librosa/numba and a torchaudio built for another torch;
# its metrics need only snntorch (pure python, no dependencies) beside what is here.
$PIP install --no-deps "neurobench==2.3.0" "snntorch==1.0.0"
if [ -n "${SJLT_WHEEL:-}" ]; then  # a built wheel, installed as a user would (not editable)
    $PIP install --no-deps "$SJLT_WHEEL"
else
    $PIP install --no-deps -e . -e plugins/sjlt-random-prune
fi
echo "installed into $VENV ($($VENV/bin/python -c 'import torch,spikingjelly_lt;print("torch",torch.__version__)'))" >&2
