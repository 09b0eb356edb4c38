"""CPU speed of spiking training vs the ANN, and of the supermask search vs dense training.

    .venv/bin/python bench/speed.py [--archs resnet19,vgg16] [--width 0.25] [--batch 64]
                                    [--size 32] [--timesteps 4] [--threads 2] [--repeats 7]

Prints, from one run with interleaved repeats (every configuration once per round, so
machine load hits all of them alike) and medians:
- P1 = train step of ``binw-slt`` / train step of dense ``snn`` (supermask overhead),
- P2 = train step of ``snn`` at T / (T x train step of ``ann``),
- train and eval images/s,
for both LIF implementations: SpikingJelly's ``LIFNode`` ("spikingjelly", before) and
our fused ``FastLIFNode`` ("fast", after). Not an asv benchmark (no ``time_`` names):
asv imports this module and finds nothing to run.
"""

from __future__ import annotations

import argparse
import statistics
import time

try:
    from ._args import add_model_args, measure_or_json
except ImportError:  # run as a script: python bench/NAME.py
    from _args import add_model_args, measure_or_json


def _step_fns(arch: str, method: str, impl: str, args):
    import torch

    from spikingjelly_lt._sj import reset_net
    from spikingjelly_lt.build import build_model

    model = build_model(arch=arch, method=method, width=args.width, input_size=args.size, lif_impl=impl,
                        timesteps=args.timesteps, v_threshold=0.5, fc_bn=True, num_classes=10)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=1e-3) if method.endswith("slt") else torch.optim.SGD(params, lr=1e-3, momentum=0.9))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)

    def train():
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        reset_net(model)

    def evaluate():
        model.eval()
        with torch.no_grad():
            model(x)
        reset_net(model)

    return train, evaluate


def measure(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    cases = [("ann", "fast")] + [(m, impl) for m in ("snn", "binw-slt") for impl in ("spikingjelly", "fast")]
    out = {}
    for arch in args.archs.split(","):
        fns = {case: _step_fns(arch, case[0], case[1], args) for case in cases}
        for train, evaluate in fns.values():  # warm-up
            train(); evaluate()  # noqa: E702
        times = {case: {"train": [], "eval": []} for case in cases}
        for _ in range(args.repeats):
            for case, (train, evaluate) in fns.items():
                t0 = time.perf_counter(); train(); t1 = time.perf_counter(); evaluate(); t2 = time.perf_counter()  # noqa: E702
                times[case]["train"].append(t1 - t0)
                times[case]["eval"].append(t2 - t1)
        med = {case: {k: statistics.median(v) for k, v in d.items()} for case, d in times.items()}
        T = args.timesteps
        row = {"cases": {f"{m}/{i}": {"train_s": med[(m, i)]["train"], "eval_s": med[(m, i)]["eval"],
                                      "train_img_s": args.batch / med[(m, i)]["train"],
                                      "eval_img_s": args.batch / med[(m, i)]["eval"]} for m, i in cases}}
        for impl in ("spikingjelly", "fast"):
            row[f"P1_{impl}"] = med[("binw-slt", impl)]["train"] / med[("snn", impl)]["train"]
            row[f"P2_{impl}"] = med[("snn", impl)]["train"] / (T * med[("ann", "fast")]["train"])
        row["snn_speedup_fast_vs_spikingjelly"] = med[("snn", "spikingjelly")]["train"] / med[("snn", "fast")]["train"]
        out[arch] = row
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p, width=0.25)
    args, res = measure_or_json(p, measure, argv, repeats=7)
    if res is None:
        return
    print(f"width {args.width}, batch {args.batch}, {args.size}x{args.size}, T={args.timesteps}, "
          f"{args.threads} threads, median of {args.repeats} interleaved repeats")
    for arch, row in res.items():
        print(f"\n{arch}")
        print(f"  {'case':24} {'train s':>9} {'train img/s':>12} {'eval img/s':>11}")
        for name, c in row["cases"].items():
            print(f"  {name:24} {c['train_s']:9.3f} {c['train_img_s']:12.1f} {c['eval_img_s']:11.1f}")
        for impl in ("spikingjelly", "fast"):
            print(f"  {impl:12} P1 (binw-slt/snn) = {row[f'P1_{impl}']:.3f}   P2 (snn/(T*ann)) = {row[f'P2_{impl}']:.3f}")
        print(f"  snn train step, fast vs spikingjelly LIF: {row['snn_speedup_fast_vs_spikingjelly']:.2f}x")


if __name__ == "__main__":
    main()
