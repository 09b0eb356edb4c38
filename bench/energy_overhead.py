"""Cost of counting energy during an eval pass: counted eval time / plain eval time.

    .venv/bin/python bench/energy_overhead.py [--arch resnet19] [--method binw-slt]
        [--width 0.25] [--dataset cifar10 --data-dir ../shared/data/cifar10-subset]
        [--images 1000] [--batch 250] [--timesteps 4] [--threads 2] [--repeats 5] [--json]
        [--checkpoint RESULTS.db.ckpt/HASH.pt]

Runs the trainer's own ``evaluate`` over the same test images with ``energy_model=None``
(plain) and ``"horowitz45"`` (counted), alternating plain/counted in every round so that
machine load hits both alike, after one warm-up of each. Prints the median of the
per-round ratios counted/plain (the issue's goal: 1.10 or less) with the raw times, in
wall time and in this process's CPU time (steadier when other jobs share the cores).
The model is freshly initialised unless ``--checkpoint`` names a trained cell (then its
arch, method, width, T and data set come from the checkpoint): an untrained net fires
little, so more layers see an all-zero first batch and are classified again; a
trained one shows the cost in real use. Not an asv benchmark (no ``time_`` names).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def measure(args) -> dict:
    import torch

    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.data import load_dataset, make_loader
    from spikingjelly_lt.training.trainer import evaluate, load_trained

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = {"arch": args.arch, "method": args.method, "width": args.width, "timesteps": args.timesteps}
    if args.checkpoint:
        r, bundle, model = load_trained(args.checkpoint, args.data_dir or None)
        bundle = bundle.limited(None, args.images)
        recipe = {k: r.cell.get(k) if hasattr(r, "cell") else getattr(r, k) for k in recipe}  # new / old API
    else:
        bundle = load_dataset(args.dataset, args.data_dir, limit_test=args.images)
        model = build_model(**recipe, input_size=bundle.test_x.shape[-1], v_threshold=args.v_threshold,
                            fc_bn=True, in_channels=bundle.test_x.shape[1], num_classes=bundle.num_classes)
    size = bundle.test_x.shape[-1]
    loader = make_loader(bundle, "test", args.batch)
    dev = torch.device("cpu")
    evaluate(model, loader, dev, None)
    rep = evaluate(model, loader, dev, "horowitz45")
    plain, counted, plain_cpu, counted_cpu = [], [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate(model, loader, dev, None)
        t1, c1 = time.perf_counter(), time.process_time()
        evaluate(model, loader, dev, "horowitz45")
        t2, c2 = time.perf_counter(), time.process_time()
        plain.append(t1 - t0)
        counted.append(t2 - t1)
        plain_cpu.append(c1 - c0)
        counted_cpu.append(c2 - c1)
    energy = rep["energy"]
    return {
        **recipe, "input_size": size, "images": int(bundle.test_x.shape[0]), "batch": args.batch,
        "threads": args.threads, "torch": torch.__version__, "checkpoint": args.checkpoint, "cpu": cpu_model(),
        "rules": getattr(energy, "rules", "sjlt-energy/1"),
        "top1": rep["top1"],
        "plain_s": plain, "counted_s": counted,
        "ratio_median": statistics.median(c / p for p, c in zip(plain, counted)),
        # CPU seconds of this process: steadier than wall time when other jobs share the cores
        "plain_cpu_s": plain_cpu, "counted_cpu_s": counted_cpu,
        "cpu_ratio_median": statistics.median(c / p for p, c in zip(plain_cpu, counted_cpu)),
        "mean_firing_rate": energy.mean_firing_rate, "energy_pj_per_image": energy.energy_pj,
    }


def cpu_model() -> str:
    """The CPU model name and the flags that change conv speed (speed figures travel with it)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        import platform

        return platform.processor() or "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "unknown")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return " ".join([name, *sorted(flags & {"avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet19")
    ap.add_argument("--method", default="binw-slt")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default="../shared/data/cifar10-subset")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--v-threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", help="a trained cell (RESULTS.db.ckpt/HASH.pt) instead of a fresh model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = measure(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['arch']} {out['method']} w{out['width']} {out['input_size']}x{out['input_size']} "
          f"T={out['timesteps']} {out['images']} images, batch {out['batch']}, {out['threads']} threads, "
          + (f"trained ({out['checkpoint']}), top-1 {out['top1']:.3f}" if out["checkpoint"] else "untrained"))
    print(f"cpu: {out['cpu']}; energy rules {out['rules']}")
    print("plain   s:", " ".join(f"{t:.2f}" for t in out["plain_s"]))
    print("counted s:", " ".join(f"{t:.2f}" for t in out["counted_s"]))
    rate = out["mean_firing_rate"]
    print(f"overhead counted/plain (median of paired rounds): {out['ratio_median']:.3f} wall, "
          f"{out['cpu_ratio_median']:.3f} process CPU time"
          + (f"; mean input firing rate {rate:.3f}" if rate is not None else ""))


if __name__ == "__main__":
    main()
