"""CPU speed of spiking training vs the ANN, per precision and memory format, in one run.

    .venv/bin/python bench/speed.py [--archs resnet19,vgg16] [--width 0.25] [--batch 64]
                                    [--size 32] [--timesteps 4] [--threads 2] [--repeats 5] [--json]

Every case is built in one process and timed in interleaved rounds (each case once per
round, so machine load hits all alike); figures are medians. Cases: ``ann``, ``snn`` and
``binw-slt`` in fp32 NCHW, fp32 channels_last (the default) and, where the CPU has native
bf16, bf16 channels_last; plus the dense SNN with the torch LIF path (no fused C++
kernel) and with denormals flushed, to price those two choices. Per arch:

- ``p1`` = binw-slt train step / snn train step (supermask overhead), fp32 default layout,
- ``p2`` = snn train step / (T x ann train step), same,
- ``snn_train_img_s``, ``ann_train_img_s`` (fp32 default layout),
- ``bf16_speedup`` = snn train img/s in bf16 / in fp32 (None without native bf16),
- ``binw_eval_vs_snn`` = binw-slt eval img/s / snn eval img/s, over eval passes of
  ``--eval-batches`` batches right after a train step (the first batch of a pass computes
  the supermask weights, the others reuse them),
- ``cpu`` (model name) and ``flags``;
- ``auto_path`` (what the default ``auto`` policy picks here, measured as ``sjlt`` does, and
  timed as its own case ``snn/.../auto=True``) and ``default_vs_best`` = its train step /
  the fastest fp32 snn case's (>= 1; the target is <= 1.05);
- ``sj_stock_vs_ours`` = the same spiking net built with SpikingJelly's stock multi-step
  ``LIFNode`` (torch backend, the only one on a CPU): its train step / ours (auto path);
  ``snntorch_vs_ours`` the same with snnTorch's ``Leaky`` (when snnTorch is installed);
- ``gemm_fraction``: achieved GFLOP/s of the train step's convolutions and linear layers
  (3 x a forward's 2 x MACs; the SNN's T steps included) / a large fp32 GEMM's GFLOP/s
  measured on the same cores (top-level ``gemm_gflops``).

The process keeps freed memory for reuse (:func:`spikingjelly_lt.hardware.keep_freed_memory`),
as ``sjlt`` does. Not an asv benchmark (no ``time_`` names).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

try:
    from ._args import add_model_args, measure_or_json
except ImportError:  # run as a script: python bench/NAME.py
    from _args import add_model_args, measure_or_json

CONFIGS = {  # name: (precision, memory format)
    "fp32-nchw": ("fp32", "contiguous"),
    "fp32-cl": ("fp32", "channels_last"),
    "bf16-cl": ("bf16", "channels_last"),
}
DEFAULT = "fp32-cl"


def _cell(arch: str, method: str, args, **values):
    from spikingjelly_lt.cell import Cell

    return Cell(method=method).with_values({"model.arch": arch, "model.width": args.width, "model.timesteps": args.timesteps,
                                            "model.v_threshold": 0.5, "model.fc_bn": True,
                                            "recipe.batch_size": args.batch, **values})


def _step_fns(arch: str, method: str, precision: str, memory_format: str, args, *, native: bool = True,
              lif_impl: str = "fast"):
    import torch

    from spikingjelly_lt._sj import reset_net
    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.training.precision import precision_for

    prec = precision_for(precision, "cpu", memory_format)
    torch.manual_seed(0)
    impl = "fast" if lif_impl == "snntorch" else lif_impl
    model = build_model(_cell(arch, method, args, **{"model.lif_impl": impl}), num_classes=10, input_size=args.size)
    if lif_impl == "snntorch":
        _swap_in_snntorch(model)
    model = prec.model(model)
    for m in model.modules():
        if hasattr(m, "native"):
            m.native = native
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=1e-3) if method.endswith("slt") else torch.optim.SGD(params, lr=1e-3, momentum=0.9))
    gen = torch.Generator().manual_seed(0)
    x = prec.input(torch.randn(args.batch, 3, args.size, args.size, generator=gen))
    y = torch.randint(0, 10, (args.batch,), generator=gen)

    def train():
        model.train()
        with prec.autocast():
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        reset_net(model)

    def evaluate():  # an eval pass of a few batches: the first computes the supermask weights
        model.eval()
        with torch.no_grad(), prec.autocast():
            for _ in range(args.eval_batches):
                model(x)
                reset_net(model)

    return train, evaluate


def _cases(has_bf16: bool) -> list[tuple[str, str, dict]]:
    """(method, config, extra) for every timed case."""
    configs = [c for c in CONFIGS if has_bf16 or not c.startswith("bf16")]
    cases = [(m, c, {}) for m in ("ann", "snn", "binw-slt") for c in configs]
    cases += [("snn", DEFAULT, {"native": False}), ("snn", DEFAULT, {"flush_denormal": True}),
              ("snn", DEFAULT, {"native": False, "flush_denormal": True}),
              ("snn", "fp32-nchw", {"flush_denormal": True}),
              ("snn", DEFAULT, {"lif_impl": "spikingjelly"})]  # SpikingJelly's stock multi-step LIFNode
    if _snntorch_available():
        cases.append(("snn", DEFAULT, {"lif_impl": "snntorch"}))  # snnTorch's Leaky, same topology
    return cases


def _snntorch_available() -> bool:
    try:
        import snntorch  # noqa: F401
    except ImportError:
        return False
    return True


def _swap_in_snntorch(model) -> None:
    """Replace every LIF of ``model`` by snnTorch's ``Leaky`` run over the T steps (same topology).

    ``Leaky(beta = 1 - 1/tau, threshold, reset to zero, ATan surrogate)``: its membrane update
    ``beta * mem + x`` is the LIF's without the input's 1/tau (a speed comparison, not a
    numerical twin).
    """
    import torch
    from snntorch import Leaky, surrogate

    from spikingjelly_lt.neuron.fast_lif import FastLIFNode

    class LeakySeq(torch.nn.Module):
        def __init__(self, tau: float, thr: float) -> None:
            super().__init__()
            self.leaky = Leaky(beta=1.0 - 1.0 / tau, threshold=thr, reset_mechanism="zero",
                               spike_grad=surrogate.atan())

        def forward(self, x):  # [T, N, ...] -> spikes [T, N, ...]
            mem = torch.zeros_like(x[0])
            out = []
            for t in range(x.shape[0]):
                spk, mem = self.leaky(x[t], mem)
                out.append(spk)
            return torch.stack(out)

    for name, m in list(model.named_modules()):
        if isinstance(m, FastLIFNode):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], LeakySeq(m.tau, m.v_threshold))


def _auto_case(arch: str, args) -> tuple[str, str, dict, dict]:
    """The case the default ``auto`` policy picks on this machine (measured as ``sjlt`` would)."""
    import torch

    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.methods import resolve
    from spikingjelly_lt.training.execpath import tune

    r = resolve(_cell(arch, "snn", args))
    path = tune(r, build_model(r, num_classes=10, input_size=args.size), (args.batch, 3, args.size, args.size),
                torch.device("cpu"))
    config = "fp32-cl" if path.memory_format == "channels_last" else "fp32-nchw"
    return "snn", config, {"native": path.lif == "fast", "flush_denormal": path.denormals == "flush"}, path.to_dict()


def _conv_flops(arch: str, method: str, args) -> float:
    """FLOPs (2 x MACs) of the convolutions and linear layers of one forward of a batch."""
    import torch

    from spikingjelly_lt._sj import reset_net
    from spikingjelly_lt.build import build_model

    model = build_model(_cell(arch, method, args), num_classes=10, input_size=args.size)
    total = 0.0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += 2.0 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += 2.0 * out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(args.batch, 3, args.size, args.size))
    for h in hs:
        h.remove()
    reset_net(model)
    return total


def gemm_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 GEMM GFLOP/s of an n x n x n matmul on these cores (the practical peak)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def _name(method: str, config: str, extra: dict) -> str:
    tag = "".join(f"/{k}={v}" for k, v in extra.items())
    return f"{method}/{config}{tag}"


def measure(args) -> dict:
    import torch

    from spikingjelly_lt.hardware import bf16_supported, cpu_info, keep_freed_memory

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    info = cpu_info()
    has_bf16 = bf16_supported("cpu")
    cases = _cases(has_bf16)
    out = {"gemm_gflops": gemm_gflops(args.threads)}
    for arch in args.archs.split(","):
        fns = {}
        auto = _auto_case(arch, args)
        for method, config, extra in [*cases, ("snn", auto[1], {**auto[2], "auto": True})]:
            native = extra.get("native", True)
            fns[_name(method, config, extra)] = (
                _step_fns(arch, method, *CONFIGS[config], args, native=native, lif_impl=extra.get("lif_impl", "fast")),
                extra.get("flush_denormal", False))
        times = {name: {"train": [], "eval": []} for name in fns}
        for r in range(args.repeats + 1):  # round 0 warms up
            for name, ((train, evaluate), ftz) in fns.items():
                torch.set_flush_denormal(ftz)
                t0 = time.perf_counter(); train(); t1 = time.perf_counter(); evaluate(); t2 = time.perf_counter()  # noqa: E702
                if r:
                    times[name]["train"].append(t1 - t0)
                    times[name]["eval"].append((t2 - t1) / args.eval_batches)
        torch.set_flush_denormal(False)
        med = {name: {k: statistics.median(v) for k, v in d.items()} for name, d in times.items()}
        T = args.timesteps

        def tr(method, config=DEFAULT, **extra):
            return med[_name(method, config, extra)]["train"]

        auto_name = _name("snn", auto[1], {**auto[2], "auto": True})
        snn_cases = {n: m["train"] for n, m in med.items()
                     if n.startswith("snn/") and "bf16" not in n and "lif_impl" not in n}
        best = min(snn_cases, key=snn_cases.get)
        ann_flops, snn_flops = _conv_flops(arch, "ann", args), _conv_flops(arch, "snn", args)
        row = {
            "auto_path": auto[3],
            "default_vs_best": med[auto_name]["train"] / med[best]["train"],  # >= 1; target <= 1.05
            "best_case": best,
            "sj_stock_vs_ours": tr("snn", lif_impl="spikingjelly") / med[auto_name]["train"],  # goal >= 1.3
            "snntorch_vs_ours": (tr("snn", lif_impl="snntorch") / med[auto_name]["train"]
                                 if _snntorch_available() else None),
            "gemm_fraction": {  # achieved conv+linear GFLOP/s of the train step (3 x forward) / measured GEMM
                "ann": 3 * ann_flops / tr("ann") / 1e9 / out["gemm_gflops"],
                "snn": 3 * snn_flops / med[auto_name]["train"] / 1e9 / out["gemm_gflops"],
            },
            "cases": {name: {"train_s": m["train"], "eval_s": m["eval"], "train_img_s": args.batch / m["train"],
                             "eval_img_s": args.batch / m["eval"]} for name, m in med.items()},
            "p1": tr("binw-slt") / tr("snn"),
            "p2": tr("snn") / (T * tr("ann")),
            "p2_by_config": {c: tr("snn", c) / (T * tr("ann", c)) for c in CONFIGS if has_bf16 or c != "bf16-cl"},
            "snn_train_img_s": args.batch / tr("snn"),
            "ann_train_img_s": args.batch / tr("ann"),
            "bf16_speedup": tr("snn") / tr("snn", "bf16-cl") if has_bf16 else None,
            "ann_bf16_speedup": tr("ann") / tr("ann", "bf16-cl") if has_bf16 else None,
            "channels_last_speedup": tr("snn", "fp32-nchw") / tr("snn"),
            "native_lif_speedup": tr("snn", native=False) / tr("snn"),
            "flush_denormal_speedup": tr("snn") / tr("snn", flush_denormal=True),
            "binw_eval_vs_snn": med[_name("snn", DEFAULT, {})]["eval"] / med[_name("binw-slt", DEFAULT, {})]["eval"],
            "cpu": info.model,
            "flags": list(info.flags),
        }
        if has_bf16:
            row["binw_eval_vs_snn_bf16"] = med["snn/bf16-cl"]["eval"] / med["binw-slt/bf16-cl"]["eval"]
        out[arch] = row
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_args(p, width=0.25)
    p.add_argument("--eval-batches", type=int, default=4,
                   help="batches per timed eval pass (a 1,000-image test set at batch 256 is 4)")
    args, res = measure_or_json(p, measure, argv, repeats=5)
    if res is None:
        return
    gemm = res.pop("gemm_gflops")
    first = next(iter(res.values()))
    print(f"{first['cpu']} ({', '.join(first['flags'])}); width {args.width}, batch {args.batch}, "
          f"{args.size}x{args.size}, T={args.timesteps}, {args.threads} threads, median of {args.repeats} "
          f"interleaved rounds")
    for arch, row in res.items():
        print(f"\n{arch}")
        print(f"  {'case':34} {'train s':>9} {'train img/s':>12} {'eval img/s':>11}")
        for name, c in row["cases"].items():
            print(f"  {name:34} {c['train_s']:9.3f} {c['train_img_s']:12.1f} {c['eval_img_s']:11.1f}")
        with contextlib.suppress(TypeError):
            print(f"  P1 = {row['p1']:.3f}  P2 = {row['p2']:.3f}  bf16 x{row['bf16_speedup']:.2f} "
                  f"(ann x{row['ann_bf16_speedup']:.2f})")
        print(f"  channels_last x{row['channels_last_speedup']:.2f}  native LIF x{row['native_lif_speedup']:.2f}  "
              f"flush denormal x{row['flush_denormal_speedup']:.2f}  binw-slt eval / snn eval {row['binw_eval_vs_snn']:.3f}")
        print(f"  auto path {'/'.join(v for v in (row['auto_path']['memory_format'], row['auto_path']['lif'], row['auto_path']['denormals']) if v)}: "
              f"{row['default_vs_best']:.3f}x the fastest case ({row['best_case']}); SpikingJelly's stock LIFNode "
              f"step / ours {row['sj_stock_vs_ours']:.2f}x (snnTorch Leaky {row['snntorch_vs_ours'] or float('nan'):.2f}x); GEMM fraction ann {row['gemm_fraction']['ann']:.2f}, "
              f"snn {row['gemm_fraction']['snn']:.2f} (GEMM {gemm:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
