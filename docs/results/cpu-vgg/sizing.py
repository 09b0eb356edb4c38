# Sizing run of the cpu-vgg profile: training img/s of VGG-16 on real CIFAR-10 32x32, T=4,
# 8 timed batches of 64 after 2 warm-up batches, 2 threads. Run from the repository root:
#   flock /tmp/cpu.lock env PYTHONPATH=. python docs/results/cpu-vgg/sizing.py
import time, sys, torch
from torch import nn
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.build import build_model, DataShape
from spikingjelly_lt.data import load_dataset, make_loader
from spikingjelly_lt.training.trainer import Optimizers
from spikingjelly_lt._sj import reset_net
torch.set_num_threads(2)
b = load_dataset("cifar10", "/work/shared/data/cifar10-subset", limit_train=1200)
for width in (0.125, 0.25):
    for method in ("snn", "binw-slt", "bnn-lt", "ann"):
        c = Cell().with_values({"data.dataset": "cifar10", "method": method, "model.arch": "vgg16", "model.width": width,
                                "model.learn_bn": True, "model.v_threshold": 0.5})
        r = resolve(c); m = build_model(r, DataShape.of(b)); m.train()
        opts = Optimizers(r.pruner.param_groups(m, c.recipe), 100)
        loader = make_loader(b, "train", 64, drop_last=True)
        n = 0; t0 = None
        for i, (x, y) in enumerate(loader):
            if i == 2: t0 = time.perf_counter(); n = 0
            if i == 10: break
            loss = nn.functional.cross_entropy(m(x), y); opts.zero_grad(); loss.backward(); opts.step()
            if r.spiking: reset_net(m)
            n += y.numel()
        dt = time.perf_counter() - t0
        print(f"width {width} {method}: {n/dt:.0f} img/s", flush=True)
