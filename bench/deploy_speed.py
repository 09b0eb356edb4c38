"""Eval speed of the compiled integer engine vs the fp32 model, and resident weight memory.

    .venv/bin/python bench/deploy_speed.py [--archs resnet19,vgg16] [--width 1] [--size 32]
        [--timesteps 4] [--batch 64] [--sparsity 0.5] [--engines auto] [--storages packed,int8]
        [--lif auto] [--threads 2] [--repeats 3] [--json]

A random BinW-SLT ticket (frozen random weights, a random top-k mask at ``--sparsity``,
BN running statistics drawn so that the neurons fire) is baked into a plain fp32 model
(the weights that run, as ``sjlt ticket load`` rebuilds them) and compiled. Every round
runs each compiled configuration and the fp32 model (NCHW, and channels_last: the layout
the product trains in) once on the same batch, in turn (so machine load hits all alike);
the figures are medians over rounds, and the speed-up of each configuration is the
median of its per-round ratios against the faster fp32 layout of that round (the
ratios against each layout are in the JSON). Also reported:
resident weight bytes (engine: ternary q packed 1.6 bit or int8, one alpha per layer,
the first layer's weights; fp32 model: 4 bytes per weight), prediction agreement on
the batch, mean firing rate, the CPU model and its flags. Not an asv benchmark.
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import time

try:
    from ._args import add_model_args, measure_or_json
except ImportError:  # run as a script: python bench/NAME.py
    from _args import add_model_args, measure_or_json


def _bake(model):
    """Plain layers holding the weight that runs (torch parametrizations / prune masks removed)."""
    import torch
    from torch.nn.utils import parametrize, prune

    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        elif hasattr(m, "weight_orig") and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    for p in model.parameters():
        p.requires_grad_(False)
    torch.nn.Module.eval(model)
    return model


def _calibrate_bn(model, x, target: float = 0.15):
    """BN running stats from one batch, biased so that neurons fire (a random ticket is silent)."""
    import torch

    from spikingjelly_lt._sj import reset_net

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives its exact statistics
    model.train()
    with torch.no_grad():
        model(x[: max(8, x.shape[0] // 4)])
    reset_net(model)
    for m in bns:
        with torch.no_grad():
            m.bias.add_(0.9)  # shift pre-activations towards the threshold (v_th 1, tau 2)
    model.eval()
    return model


def measure(args) -> dict:
    import torch

    from spikingjelly_lt._sj import reset_net
    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.deploy import compile_model, cpu_info, weight_bytes

    torch.set_num_threads(args.threads)
    info = cpu_info()
    out = {"cpu": info.to_dict(), "torch": torch.__version__, "width": args.width, "size": args.size,
           "timesteps": args.timesteps, "batch": args.batch, "sparsity": args.sparsity, "threads": args.threads,
           "repeats": args.repeats, "archs": {}}
    for arch in args.archs.split(","):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
        model = build_model(arch=arch, method="binw-slt", width=args.width, input_size=args.size, num_classes=10,
                            timesteps=args.timesteps, sparsity=args.sparsity, v_threshold=1.0)
        model = _bake(_calibrate_bn(model, x))
        configs = {}
        for engine in args.engines.split(","):
            for storage in args.storages.split(","):
                net = compile_model(model, engine=engine, storage=storage, lif=args.lif)
                configs[f"{net.engine}/{storage}/{net.lif}"] = net

        def fp32():
            with torch.no_grad():
                y = model(x)
            reset_net(model)
            return y

        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)

        def fp32_cl():  # the layout the product trains and evaluates in (recipe.memory_format)
            with torch.no_grad():
                y = model_cl(x_cl)
            reset_net(model_cl)
            return y

        rates = []

        def rate_hook(_m, _i, o):
            rates.append(float(o.float().mean()))

        neurons = [m for m in model.modules() if hasattr(m, "v_threshold")]
        handles = [m.register_forward_hook(rate_hook) for m in neurons]
        ref = fp32().argmax(1)  # warm-up, firing rates
        for h in handles:
            h.remove()
        agree = {}
        for name, net in configs.items():
            agree[name] = float((net(x).argmax(1) == ref).float().mean())  # warm-up + agreement
        fp32_cl()  # warm-up
        runs = [("fp32 model", fp32), ("fp32 model channels_last", fp32_cl),
                *((name, functools.partial(net, x)) for name, net in configs.items())]
        times: dict[str, list[float]] = {name: [] for name, _ in runs}
        for _ in range(args.repeats):
            for name, fn in runs:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        # the baseline each round: the faster of the two fp32 layouts
        best = [min(a, b) for a, b in zip(times["fp32 model"], times["fp32 model channels_last"])]
        row = {"mean_firing_rate": statistics.fmean(rates), "cases": {}}
        mb = weight_bytes(model)
        for key, name in (("fp32_model", "fp32 model"), ("fp32_model_channels_last", "fp32 model channels_last")):
            row[key] = {"median_s": statistics.median(times[name]),
                        "img_s": args.batch / statistics.median(times[name]),
                        "resident_weight_bytes": mb["weights"], "resident_total_bytes": mb["total"]}
        for name, net in configs.items():
            eb = net.resident_bytes()
            row["cases"][name] = {
                "median_s": statistics.median(times[name]),
                "img_s": args.batch / statistics.median(times[name]),
                "speedup_vs_fp32": statistics.median([m / e for m, e in zip(best, times[name])]),
                "speedup_vs_fp32_nchw": statistics.median([m / e for m, e in zip(times["fp32 model"], times[name])]),
                "speedup_vs_fp32_channels_last": statistics.median(
                    [m / e for m, e in zip(times["fp32 model channels_last"], times[name])]),
                "resident_weight_bytes": eb["weights"],
                "weight_memory_ratio": mb["weights"] / eb["weights"],
                "resident_total_bytes": eb["total"],
                "total_memory_ratio": mb["total"] / eb["total"],
                "prediction_agreement": agree[name],
            }
        out["archs"][arch] = row
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p, width=1.0)
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--engines", default="auto", help="comma list of auto|int8|bf16|fp16|fp32")
    p.add_argument("--storages", default="packed,int8", help="comma list of packed|int8")
    p.add_argument("--lif", default="auto", help="torch | native | auto (native when it builds)")
    args, res = measure_or_json(p, measure, argv, repeats=3)
    if res is None:
        return
    cpu = res["cpu"]
    print(f"CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or '-'}; torch {res['torch']} "
          f"({cpu['torch_capability']}), {args.threads} threads")
    print(f"width {args.width}, {args.size}x{args.size}, T={args.timesteps}, batch {args.batch}, "
          f"sparsity {args.sparsity}, median of {args.repeats} interleaved rounds")
    for arch, row in res["archs"].items():
        fm = row["fp32_model"]
        print(f"\n{arch} (mean firing rate {row['mean_firing_rate']:.3f})")
        print(f"  {'case':22} {'s/batch':>8} {'img/s':>8} {'speed-up':>9} {'weight bytes':>13} {'x smaller':>10} "
              f"{'agree':>6}")
        for label, m in (("fp32 model NCHW", fm), ("fp32 model chan-last", row["fp32_model_channels_last"])):
            print(f"  {label:22} {m['median_s']:8.3f} {m['img_s']:8.1f} {'':>9} "
                  f"{m['resident_weight_bytes']:13,} {'1.0':>10} {'':>6}")
        for name, c in row["cases"].items():
            print(f"  {name:22} {c['median_s']:8.3f} {c['img_s']:8.1f} {c['speedup_vs_fp32']:9.2f} "
                  f"{c['resident_weight_bytes']:13,} {c['weight_memory_ratio']:10.1f} "
                  f"{c['prediction_agreement']:6.3f}")


if __name__ == "__main__":
    main()
