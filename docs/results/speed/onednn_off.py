"""Train-step time with oneDNN's convolutions on vs off (``torch.backends.mkldnn.enabled``), per layout.

    .venv/bin/python docs/results/speed/onednn_off.py [ROUNDS] > docs/results/speed/onednn-off-CPU.json

The price of the one workaround for the oneDNN heap corruption seen on an AVX2-only CPU
(docs/performance.md, "Known problem"): VGG-16 and ResNet-19 at width 0.25, batch 64, 32x32,
T=4, fp32, 2 threads; snn and binw-slt; channels_last and NCHW, each with oneDNN on and off.
Every case is built once (bench/speed.py's step builder) and timed in interleaved rounds after
a warm-up round; figures are medians. A summary per arch and method goes to stderr.
"""
import argparse, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import torch
from speed import _step_fns
from spikingjelly_lt.hardware import cpu_info

torch.set_num_threads(2)
args = argparse.Namespace(width=0.25, timesteps=4, batch=64, size=32, eval_batches=1)
cases = {}
for arch in ("vgg16", "resnet19"):
    for method in ("snn", "binw-slt"):
        for mf in ("channels_last", "contiguous"):
            for onednn in (True, False):
                cases[(arch, method, mf, onednn)] = _step_fns(arch, method, "fp32", mf, args)[0]
times = {k: [] for k in cases}
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
for r in range(ROUNDS + 1):
    for k, fn in cases.items():
        torch.backends.mkldnn.enabled = k[3]
        t0 = time.perf_counter(); fn(); dt = time.perf_counter() - t0
        torch.backends.mkldnn.enabled = True
        if r:
            times[k].append(dt)
info = cpu_info()
out = {"cpu": info.model, "flags": list(info.flags), "capability": torch.backends.cpu.get_cpu_capability(),
       "torch": torch.__version__, "threads": 2, "batch": 64, "width": 0.25, "rounds": ROUNDS, "cases": []}
for k, v in times.items():
    med = statistics.median(v)
    out["cases"].append({"arch": k[0], "method": k[1], "memory_format": k[2], "onednn": k[3],
                         "step_ms": round(1000 * med, 1), "img_s": round(64 / med, 1)})
print(json.dumps(out, indent=1))
for arch in ("vgg16", "resnet19"):
    for method in ("snn", "binw-slt"):
        ms = {(c["memory_format"], c["onednn"]): c["step_ms"] for c in out["cases"] if c["arch"] == arch and c["method"] == method}
        best_on = min(ms[("channels_last", True)], ms[("contiguous", True)])
        print(f"{arch} {method}: cl+on {ms[('channels_last', True)]} nchw+on {ms[('contiguous', True)]} "
              f"cl+off {ms[('channels_last', False)]} nchw+off {ms[('contiguous', False)]} ms; "
              f"nchw+on / cl+on = {ms[('contiguous', True)] / ms[('channels_last', True)]:.3f}; "
              f"best off / best on = {min(ms[('channels_last', False)], ms[('contiguous', False)]) / best_on:.3f}", file=sys.stderr)
