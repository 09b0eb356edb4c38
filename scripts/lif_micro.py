"""Micro-benchmark: forward+backward of SpikingJelly ``LIFNode`` vs ``FastLIFNode`` on CPU.

Run from the repo root: ``.venv/bin/python scripts/lif_micro.py [--repeats 15]``.
Both nodes are timed interleaved on the same input/upstream gradient; prints median and min
(min is the more robust figure when other processes share the 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spikingjelly_lt._sj import functional, neuron, surrogate  # noqa: E402
from spikingjelly_lt.neuron.fast_lif import FastLIFNode  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="4,64,32,16,16", help="T,N,C,H,W")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = tuple(int(s) for s in args.shape.split(","))
    x = torch.randn(shape) * 1.5 + 0.7
    g = torch.randn(shape)
    kw = dict(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")
    nodes = {"sj_LIFNode": neuron.LIFNode(**kw), "FastLIFNode": FastLIFNode(**kw)}

    def step(m: torch.nn.Module) -> None:
        functional.reset_net(m)
        xx = x.detach().requires_grad_()
        m(xx).backward(g)

    times: dict[str, list[float]] = {k: [] for k in nodes}
    for m in nodes.values():  # warm-up
        for _ in range(3):
            step(m)
    for _ in range(args.repeats):
        for name, m in nodes.items():
            t0 = time.perf_counter()
            step(m)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    best = {k: min(v) * 1e3 for k, v in times.items()}
    print(f"shape={shape} threads={torch.get_num_threads()} repeats={args.repeats} (fwd+bwd ms)")
    for k in nodes:
        print(f"  {k:12s} median {med[k]:8.3f}   min {best[k]:8.3f}")
    ratio = med["sj_LIFNode"] / med["FastLIFNode"]
    ratio_min = best["sj_LIFNode"] / best["FastLIFNode"]
    print(f"  speed-up     median {ratio:8.2f}x  min {ratio_min:6.2f}x")


if __name__ == "__main__":
    main()
