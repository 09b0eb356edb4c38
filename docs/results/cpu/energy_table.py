"""Energy of trained cells under every registered cost model: docs/results/cpu/README.md, "Energy under the written rules".

    PYTHONPATH=TREE .venv/bin/python docs/results/cpu/energy_table.py CKPT_DIR OUT.json
"""
import glob, json, sys, time
import torch
torch.set_num_threads(2)
from spikingjelly_lt import plugins
from spikingjelly_lt.data import make_loader
from spikingjelly_lt.energy.counter import count_energy, energy_under
from spikingjelly_lt.training.trainer import load_trained
import spikingjelly_lt.energy.counter as C
out = {"rules": getattr(C, "RULES", "sjlt-energy/1 (pre-issue-16)"), "cells": {}}
for ck in sorted(glob.glob(sys.argv[1] + "/*.pt")):
    cfg, bundle, model = load_trained(ck, "/work/shared/data/cifar10-subset")
    loader = make_loader(bundle, "test", 250)
    t = time.perf_counter()
    rep = count_energy(model, loader, "horowitz45")
    by = {n: energy_under(rep, n) for n in plugins.names("energy_models")}
    out["cells"][cfg.method] = {
        "checkpoint": ck, "images": rep.images, "seconds": time.perf_counter() - t,
        "mean_firing_rate": rep.mean_firing_rate,
        "energy_by_model": {n: r.energy_pj for n, r in by.items()},
        "split": {n: {"mac": r.energy_mac_pj, "ac": r.energy_ac_pj, "mem": r.energy_mem_pj,
                      "neuron": getattr(r, "energy_neuron_pj", 0.0), "membrane": getattr(r, "energy_membrane_pj", 0.0)} for n, r in by.items()},
        "layers": [{k: getattr(l, k, None) for k in ("name", "input_kind", "op_kind", "rule", "macs", "acs", "firing_rate", "stored_bits", "energy_pj")} for l in rep.layers],
        "neuron_updates": getattr(rep, "neuron_updates", None),
    }
json.dump(out, open(sys.argv[2], "w"), indent=1)
print("wrote", sys.argv[2])
