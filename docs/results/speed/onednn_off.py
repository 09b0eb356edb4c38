"""Train-step time with oneDNN's convolutions on vs off (``torch.backends.mkldnn.enabled``), per layout.

    .venv/bin/python docs/results/speed/onednn_off.py [ROUNDS] > docs/results/speed/onednn-off-CPU.json

The price of the one workaround for the oneDNN heap corruption seen on an AVX2-only CPU
(docs/performance.md, "Known problem"): VGG-16 and ResNet-19 at width 0.25, batch 64, 32x32,
T=4, fp32, 2 threads; snn and binw-slt; channels_last and NCHW, each with oneDNN on and off.
Every case is built once (bench/speed.py's step builder) and timed in interleaved rounds after
a warm-up round; figures are medians. A summary per arch and method goes to stderr.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import torch
from speed import _step_fns

from spikingjelly_lt.hardware import cpu_info
from spikingjelly_lt.training.execpath import _time  # interleaved rounds after a warm-up, medians

ARCHS, METHODS, LAYOUTS = ("vgg16", "resnet19"), ("snn", "binw-slt"), ("channels_last", "contiguous")


def _with_onednn(fn, on: bool):
    """``fn`` as a step for ``_time``: run with oneDNN's convolutions ``on`` or off, return seconds."""
    def step() -> float:
        torch.backends.mkldnn.enabled = on
        try:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        finally:
            torch.backends.mkldnn.enabled = True
    return step


args = argparse.Namespace(width=0.25, timesteps=4, batch=64, size=32, eval_batches=1, threads=2)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
torch.set_num_threads(args.threads)
steps = {(arch, method, mf, on): _with_onednn(_step_fns(arch, method, "fp32", mf, args)[0], on)
         for arch in ARCHS for method in METHODS for mf in LAYOUTS for on in (True, False)}
med = _time(steps, rounds)
info = cpu_info()
out = {"cpu": info.model, "flags": list(info.flags), "capability": torch.backends.cpu.get_cpu_capability(),
       "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "width": args.width,
       "rounds": rounds, "cases": [{"arch": a, "method": m, "memory_format": mf, "onednn": on,
                                    "step_ms": round(1000 * t, 1), "img_s": round(args.batch / t, 1)}
                                   for (a, m, mf, on), t in med.items()]}
print(json.dumps(out, indent=1))
for arch in ARCHS:
    for method in METHODS:
        ms = {(mf, on): round(1000 * med[(arch, method, mf, on)], 1) for mf in LAYOUTS for on in (True, False)}
        best_on = min(ms[(mf, True)] for mf in LAYOUTS)
        best_off = min(ms[(mf, False)] for mf in LAYOUTS)
        print(f"{arch} {method}: cl+on {ms[('channels_last', True)]} nchw+on {ms[('contiguous', True)]} "
              f"cl+off {ms[('channels_last', False)]} nchw+off {ms[('contiguous', False)]} ms; "
              f"nchw+on / cl+on = {ms[('contiguous', True)] / ms[('channels_last', True)]:.3f}; "
              f"best off / best on = {best_off / best_on:.3f}", file=sys.stderr)
