"""Is ``torch.compile`` worth it for the LIF neuron on the CPU? One LIF layer forward+backward.

    .venv/bin/python bench/lif_compile.py [--shape 4,64,32,32,32] [--threads 2] [--repeats 15] [--json]

Times, on one channels_last [T, N, C, H, W] input (fp32, v_threshold 0.5, ATan surrogate,
hard reset, detach_reset): the fused op with its C++ kernel (the default), the fused op on
torch kernels (``native=False``), and a plain-torch LIF (spike = step + surrogate trick)
compiled by ``torch.compile`` (inductor, C++ codegen). Prints the compile time and the
medians of interleaved repeats, and checks that all three give the same spikes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

try:
    from ._args import measure_or_json
except ImportError:  # run as a script: python bench/NAME.py
    from _args import measure_or_json


def _plain_lif(tau: float, thr: float, alpha: float = 2.0):
    import torch

    def lif(x_seq):
        v = torch.zeros_like(x_seq[0])
        out = []
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - v) / tau
            d = h - thr
            prim = torch.atan((math.pi / 2 * alpha) * d) / math.pi  # ATan surrogate's primitive
            s = (d >= 0).to(h.dtype) + (prim - prim.detach())  # forward: the step; backward: the surrogate
            out.append(s)
            v = h * (1.0 - s.detach())  # hard reset to 0, detached
        return torch.stack(out)

    return lif


def measure(args) -> dict:
    import torch

    from spikingjelly_lt.hardware import cpu_info, keep_freed_memory
    from spikingjelly_lt.neuron.fast_lif import fast_lif_multi_step

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    shape = tuple(int(s) for s in args.shape.split(","))
    tau, thr = 2.0, 0.5
    x = torch.randn(shape).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3).requires_grad_(True)
    g = torch.randn_like(x)
    v0 = torch.zeros_like(x[0])
    t0 = time.perf_counter()
    compiled = torch.compile(_plain_lif(tau, thr), dynamic=False)
    compiled(x).backward(g)
    compile_s = time.perf_counter() - t0

    def fused(native):
        def run():
            s, _, _ = fast_lif_multi_step(x, v0, tau, True, thr, 0.0, None, True, native=native)
            s.backward(g)
        return run

    cases = {"fused_native": fused(True), "fused_torch": fused(False), "compiled": lambda: compiled(x).backward(g)}
    for f in cases.values():
        f()
    times = {k: [] for k in cases}
    for _ in range(args.repeats):
        for k, f in cases.items():
            t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)  # noqa: E702
    with torch.no_grad():
        ref = fast_lif_multi_step(x, v0, tau, True, thr, 0.0, None, True)[0]
        same = bool(torch.equal(ref, compiled(x.detach())))
    info = cpu_info()
    return {"shape": list(shape), "compile_s": compile_s, "same_spikes": same,
            "ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}, "cpu": info.model,
            "flags": list(info.flags)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="4,64,32,32,32")
    p.add_argument("--threads", type=int, default=2)
    args, res = measure_or_json(p, measure, argv, repeats=15)
    if res is None:
        return
    print(f"{res['cpu']}; LIF forward+backward on {res['shape']} channels_last fp32, {args.threads} threads")
    for k, ms in res["ms"].items():
        print(f"  {k:14} {ms:8.2f} ms")
    print(f"  torch.compile took {res['compile_s']:.1f} s; same spikes: {res['same_spikes']}")


if __name__ == "__main__":
    main()
