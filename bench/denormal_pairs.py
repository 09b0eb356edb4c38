"""Does flushing denormals change accuracy? Paired seeds from one results file.

    .venv/bin/python bench/denormal_pairs.py RESULTS.db [--json]

Pairs every ``recipe.denormals=flush`` row with the ``keep`` row of the same cell otherwise
(method, seed, sparsity, every other field) and reports, per method, the paired difference
flush - keep of test top-1 (points) and of validation accuracy, with a 95 % t interval
(:func:`spikingjelly_lt.results.stats.paired`).
"""

from __future__ import annotations

import argparse
import json
import sys

from spikingjelly_lt.results.stats import paired
from spikingjelly_lt.results.store import ResultStore


def _without(cfg: dict) -> str:
    c = json.loads(json.dumps(cfg))
    c.get("recipe", {}).pop("denormals", None)
    return json.dumps(c, sort_keys=True)


def pairs(rows: list[dict]) -> dict:
    out = {}
    by = {}
    for r in rows:
        if r["status"] != "done":
            continue
        den = (r["config"].get("recipe") or {}).get("denormals")
        by.setdefault((r["config"]["method"], _without(r["config"])), {})[den] = r
    for metric in ("top1", "val_top1"):
        for (method, key), d in sorted(by.items()):
            if "flush" in d and "keep" in d:
                seed = d["keep"]["config"]["seed"]
                out.setdefault(method, {}).setdefault(metric, ({}, {}))
                a, b = out[method][metric]
                a[seed] = 100 * d["flush"]["metrics"][metric]
                b[seed] = 100 * d["keep"]["metrics"][metric]
    report = {}
    for method, metrics in out.items():
        report[method] = {}
        for metric, (a, b) in metrics.items():
            s, diffs = paired(a, b)
            report[method][metric] = {"n": s.n, "mean_diff_points": s.mean, "ci95": [s.lo, s.hi],
                                      "flush": a, "keep": b}
    return report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    rep = pairs(ResultStore(a.results, readonly=True).rows())
    if a.json:
        json.dump(rep, sys.stdout, indent=1)
        print()
        return
    for method, metrics in rep.items():
        for metric, e in metrics.items():
            print(f"{method:10} {metric:9} n={e['n']}  flush - keep = {e['mean_diff_points']:+.2f} points "
                  f"[{e['ci95'][0]:+.2f}, {e['ci95'][1]:+.2f}]")


if __name__ == "__main__":
    main()
