"""The prepared GPU check: does every path that real runs take work on this GPU, and how fast?

    .venv/bin/python bench/gpu_check.py [--data-dir DIR] [--out FILE.json] [--device cuda]
                                        [--limit-train N] [--budget-s 420] [--quick]

At most ~8 minutes on one GPU. Writes one JSON file (default: ``$OUT/gpu-check.json`` when
``$OUT`` is set, else ``gpu-check.json``) with:

- ``env``: torch / CUDA / cuDNN versions, GPU name and capability, native bf16, the TF32
  flags as an fp32 cell leaves them (they must be off);
- ``threshold``: the supermask threshold of the largest ResNet-19 layer at width 1
  (2.36 M scores): ms per call for ``kthvalue``, ``topk`` and ``sort``, and which one
  :func:`spikingjelly_lt.nn.topk.kth_largest` uses here;
- ``cells``: one epoch each of snn, binw-slt and bnn-lt at the ``paper`` profile's width
  on the CIFAR-10 subset, in fp32 and in bf16, through ``sjlt bench`` (status, img/s, peak
  memory, loss finite = the cell finished), and the ``paper`` profile's per-cell time
  computed from the measured img/s;
- ``ticket``: ``sjlt ticket export`` of the binw-slt fp32 cell and ``sjlt ticket run
  --device cuda`` (engine vs float64: sums, spikes and predictions exact);
- ``torchrun``: with 2+ GPUs, one binw-slt epoch under torchrun with ``--device auto``
  and with ``--device cuda``.

Every step runs in its own process with a time limit, and a failing step is recorded (rc
and the last lines of its output), never fatal: the JSON always comes back. ``--quick``
shrinks everything (digits, width 0.0625) so the script itself is tested on a CPU in CI.
Without ``--data-dir`` (or when it does not hold ``cifar-10-batches-py``) a CIFAR-format
folder of random images is written to a temporary directory, so timings stay valid and
accuracies mean nothing (``data`` says which).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("snn", "binw-slt", "bnn-lt")
PAPER_EPOCHS, PAPER_TRAIN = 200, 45_000  # the paper profile: 200 epochs over 50,000 x 0.9 training images


def _sjlt(*args: str, timeout: float, env: dict | None = None, prefix: list[str] | None = None) -> dict:
    """Run ``sjlt ARGS`` (or ``PREFIX -m spikingjelly_lt ARGS``); rc, seconds, JSON stdout or the output tail."""
    cmd = [*(prefix or [sys.executable]), "-m", "spikingjelly_lt", *args]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"rc": 124, "seconds": round(time.perf_counter() - t0, 1), "error": f"timed out after {timeout:.0f} s"}
    out = {"rc": p.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    try:
        out["json"] = json.loads(p.stdout) if p.stdout.strip() else None
    except json.JSONDecodeError:
        out["stdout_tail"] = p.stdout[-1500:]
    if p.returncode:
        out["stderr_tail"] = p.stderr[-1500:]
    return out


def _random_cifar(folder: Path, n_train: int, n_test: int) -> Path:
    """A ``cifar-10-batches-py`` folder of random uint8 images (timing only)."""
    import numpy as np

    rng = np.random.default_rng(0)
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}

    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch(n_train // 5), fh)
    with open(d / "test_batch", "wb") as fh:
        pickle.dump(batch(n_test), fh)
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    return folder


def _env(device: str) -> dict:
    import torch

    from spikingjelly_lt.hardware import bf16_supported, cpu_info
    from spikingjelly_lt.training.precision import precision_for

    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "device": device, "cpu": cpu_info().to_dict(), "python": sys.version.split()[0]}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        out.update(gpu=torch.cuda.get_device_name(dev), capability=list(torch.cuda.get_device_capability(dev)),
                   gpus=torch.cuda.device_count(), bf16_native=bf16_supported(dev),
                   memory_gb=round(torch.cuda.get_device_properties(dev).total_memory / 1e9, 1))
        precision_for("fp32", dev).apply()
        out["tf32_after_fp32_cell"] = {"matmul": torch.backends.cuda.matmul.fp32_precision,
                                       "cudnn_conv": torch.backends.cudnn.conv.fp32_precision}
    return out


def _threshold(device: str, n: int, repeats: int = 20) -> dict:
    """ms per threshold selection of ``n`` scores keeping half, for each candidate."""
    import torch

    from spikingjelly_lt.nn.topk import kth_largest

    dev = torch.device(device)
    x = torch.randn(n, device=dev)
    k = n // 2
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cands = {
        "kthvalue": lambda: torch.kthvalue(x, n - k + 1).values,
        "topk": lambda: torch.topk(x, k, sorted=False).values.min(),
        "sort": lambda: torch.sort(x).values[n - k],
        "used": lambda: kth_largest(x, k),
    }
    ref = float(cands["kthvalue"]())
    out = {"scores": n}
    for name, fn in cands.items():
        fn()
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            v = fn()
            sync()
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = round(1000 * statistics.median(times), 3)
        out[f"{name}_equal"] = float(v) == ref
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-subset"))
    p.add_argument("--out", default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--limit-train", type=int, default=None, help="training images per cell (default: all)")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new steps after this many seconds")
    p.add_argument("--quick", action="store_true", help="tiny everything (a CPU smoke test of this script)")
    args = p.parse_args(argv)
    out_path = Path(args.out or Path(os.environ.get("OUT", ".")) / "gpu-check.json")
    started = time.perf_counter()
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": sys.argv[1:]}

    def left() -> float:
        return args.budget_s - (time.perf_counter() - started)

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=1, default=str) + "\n")

    tmp = Path(tempfile.mkdtemp(prefix="sjlt-gpu-check-"))
    try:
        report["env"] = _env(args.device)
        save()
        report["threshold"] = _threshold(args.device, 4096 if args.quick else 2_359_296)
        save()
        if args.quick:
            base = ["--set", "data.dataset=digits", "--width", "0.0625", "--timesteps", "2", "--limit-train", "128"]
            data = {"data": "digits (quick)"}
        else:
            data_dir = Path(args.data_dir)
            if not (data_dir / "cifar-10-batches-py").is_dir():
                data_dir = _random_cifar(tmp / "cifar", 10_000, 1_000)
                data = {"data": "random CIFAR-format images (timing only)"}
            else:
                data = {"data": str(data_dir)}
            base = ["--profile", "paper", "--data-dir", str(data_dir)]
            if args.limit_train:
                base += ["--limit-train", str(args.limit_train)]
        report.update(data)
        report["cells"] = {}
        db = {}
        for precision in ("fp32", "bf16"):
            if left() < 30:
                report["cells"][precision] = {"skipped": "time budget"}
                continue
            db[precision] = tmp / f"{precision}.db"
            r = _sjlt("bench", *base, "--methods", ",".join(METHODS), "--set", "recipe.epochs=1",
                      "--set", f"recipe.precision={precision}", "--device", args.device,
                      "--results", str(db[precision]), "--json", timeout=max(30.0, left()))
            cells = {}
            for c in ((r.pop("json", None) or {}).get("cells") or []):
                m = c.get("metrics") or {}
                img_s = m.get("images_per_s")
                rounds = m.get("rounds") or 1
                cells[c["config"]["method"]] = {
                    "status": c["status"], "reason": c.get("reason"), "images_per_s": img_s,
                    "train_seconds": m.get("train_seconds"), "peak_memory_gb": (m.get("peak_memory_bytes") or 0) / 1e9,
                    "kernel_load_s": m.get("kernel_load_s"), "compute": m.get("compute"), "top1": m.get("top1"),
                    "loss_finite": c["status"] == "done",
                    "paper_cell_hours_est": round(PAPER_EPOCHS * PAPER_TRAIN * rounds / img_s / 3600, 2) if img_s else None,
                    "hash": c["config_hash"]}
            report["cells"][precision] = {"run": r, "cells": cells}
            save()
        binw = (report["cells"].get("fp32", {}).get("cells") or {}).get("binw-slt")
        if binw and binw["status"] == "done" and left() > 20:
            ckpt = Path(f"{db['fp32']}.ckpt") / f"{binw['hash']}.pt"
            ticket = tmp / "binw.sjlt"
            data_args = ["--data-dir", base[base.index("--data-dir") + 1]] if "--data-dir" in base else []
            exp = _sjlt("ticket", "export", str(ckpt), "-o", str(ticket), *data_args, timeout=120)
            run = _sjlt("ticket", "run", str(ticket), "--device", args.device, "--json", *data_args,
                        "--limit-test", "256", timeout=max(20.0, min(240.0, left())))
            report["ticket"] = {"export": exp, "run": run}
            save()
        gpus = report["env"].get("gpus") or 0
        if gpus >= 2 and not args.quick:
            report["torchrun"] = {}
            for dev in ("auto", "cuda"):
                if left() < 30:
                    break
                report["torchrun"][dev] = _sjlt(
                    "bench", *base, "--methods", "binw-slt", "--set", "recipe.epochs=1", "--limit-train", "4096",
                    "--device", dev, "--results", str(tmp / f"ddp-{dev}.db"), "--json", timeout=max(30.0, left()),
                    prefix=[sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"])
                report["torchrun"][dev].pop("json", None)
                save()
        report["complete"] = True
    except Exception as exc:  # noqa: BLE001 - the JSON always comes back
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        save()
        shutil.rmtree(tmp, ignore_errors=True)
    print(out_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
