import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SJLT_TEST_THREADS", "2")))
# `auto` execution paths take the default path instead of being timed (reproducible numbers;
# tests/test_execpath.py measures them on purpose). Subprocesses inherit it.
os.environ.setdefault("SJLT_EXEC_PATH", "default")
# oneDNN on a CPU without AVX-512 (an AVX2-only AMD EPYC, 2026-12-06): in one pytest process the
# backward of a channels_last convolution aborted with "free(): invalid pointer" / "corrupted size
# vs. prev_size" in 4 of 5 runs of test_asv_suite + test_bench_scripts + test_precision (also with
# the package's C++ kernels switched off), never with oneDNN's convolutions off; its emulated int8
# also gave nondeterministic sums there (deploy.cpu.int8_exact). The suite runs torch's own
# convolutions on such a CPU; what a user's training does there is noted in docs/performance.md.
# The deploy tests keep oneDNN: they check exact integer sums, and torch's own channels_last fp32
# convolution returned a non-integer (3.2e-6 for 0) there; they ran clean in every full run.
_BELOW_AVX512 = torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2")
_KEEP_ONEDNN = {"test_deploy", "test_deploy_pool", "test_own_deploy", "test_device_sim"}


@pytest.fixture(autouse=True)
def _onednn_convolutions_off_below_avx512(request):
    if not _BELOW_AVX512 or request.module.__name__ in _KEEP_ONEDNN:
        yield
        return
    before = torch.backends.mkldnn.enabled  # (mkldnn.flags() would also set TF32 and warn each test)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Each test leaves torch's thread count as it found it. An in-process `sjlt bench --threads 1`
    (run_cli) used to set 1 for the rest of the session, so every later test, the deploy smoke
    ticket included, trained on 1 thread instead of SJLT_TEST_THREADS (and got other numbers)."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


CIFAR_SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-subset"


@pytest.fixture
def cifar_subset() -> Path:
    if not (CIFAR_SUBSET / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
    return CIFAR_SUBSET


def run_cli(args, capsys, monkeypatch):
    """Run ``sjlt ARGS`` in-process: (exit code, stdout, stderr)."""
    import sys

    from spikingjelly_lt.cli import main

    monkeypatch.setattr(sys, "argv", ["sjlt", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err
