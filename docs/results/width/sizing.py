# Sizing run of the width study: training img/s of VGG-16 on real CIFAR-10 32x32, T=4, fp32,
# per width and method, 8 timed batches of 64 after 2 warm-up batches, 2 threads.
# Run from the repository root:  .venv/bin/python docs/results/width/sizing.py DATA_DIR
import sys
import time

import torch
from torch import nn

from spikingjelly_lt._sj import reset_net
from spikingjelly_lt.build import DataShape, build_model
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.data import load_dataset, make_loader
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.training.trainer import Optimizers

torch.set_num_threads(2)
b = load_dataset("cifar10", sys.argv[1], limit_train=1200)
for width in (0.0625, 0.125, 0.25):
    for method in ("snn", "binw-slt", "bnn-lt"):
        c = Cell().with_values({"data.dataset": "cifar10", "method": method, "model.arch": "vgg16",
                                "model.width": width, "model.learn_bn": True, "model.v_threshold": 0.5})
        r = resolve(c)
        m = build_model(r, DataShape.of(b))
        m.train()
        opts = Optimizers(r.pruner.param_groups(m, c.recipe), 100)
        n, t0 = 0, None
        for i, (x, y) in enumerate(make_loader(b, "train", 64, drop_last=True)):
            if i == 2:
                t0, n = time.perf_counter(), 0
            if i == 10:
                break
            loss = nn.functional.cross_entropy(m(x), y)
            opts.zero_grad()
            loss.backward()
            opts.step()
            if r.spiking:
                reset_net(m)
            n += y.numel()
        print(f"width {width} {method}: {n / (time.perf_counter() - t0):.0f} img/s", flush=True)
