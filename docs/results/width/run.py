"""Run the width study (issue 25) cell by cell, stopping between cells at a deadline.

The study is ``sjlt bench --profile width`` (snn, bnn-lt, binw-slt x widths 0.0625, 0.125,
0.25 x seeds 0-2) plus binw-slt with the search the pilot chose (``--best``), run seed by
seed so that every finished seed is a complete paired set. Each cell is one ``sjlt bench``
call; before a cell that is not done yet starts, its measured duration (``SECONDS`` below,
from docs/results/width/README.md "Sizing") must fit before ``--deadline``, because a cell
cut mid-run is lost between sessions (checkpoints are not committed). Done cells are
skipped (the results file is resumed).

    .venv/bin/python docs/results/width/run.py RESULTS.db --data-dir ../shared/data/cifar10-subset \\
        --best recipe.freeze_pruned=0.2 --best recipe.freeze_kept=0.2 --minutes 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from spikingjelly_lt.cli.request import options_to_cells
from spikingjelly_lt.results.store import ResultStore

# seconds per cell at 12 epochs on 2 cores, about 1.4x the times measured or scaled on an AMD EPYC
# (binw-slt w0.125 trains at ~650 img/s there, fp32; README "Sizing"): a cell that would not end
# before the deadline does not start
SECONDS = {0.0625: {"snn": 300, "bnn-lt": 140, "binw-slt": 330},
           0.125: {"snn": 460, "bnn-lt": 190, "binw-slt": 500},
           0.25: {"snn": 970, "bnn-lt": 370, "binw-slt": 1060}}


def done_hashes(results: str) -> set[str]:
    """The hashes of the done rows, read through a read-only connection closed at once (a
    writer process may be finishing its own cell)."""
    if not os.path.exists(results):
        return set()
    with ResultStore(results, create=False, readonly=True) as store:
        return {r["config_hash"] for r in store.rows() if r["status"] == "done"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--best", action="append", default=[], help="KEY=VALUE of the pilot's best search")
    ap.add_argument("--minutes", type=float, required=True, help="stop before a cell that would end later")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    deadline = time.time() + 60 * args.minutes
    variants = [[]] + ([[f"--set={b}" for b in args.best]] if args.best else [])
    for seed in args.seeds.split(","):
        for width in (0.0625, 0.125, 0.25):
            for method in ("snn", "bnn-lt", "binw-slt"):
                for extra in (variants if method == "binw-slt" else [[]]):
                    sets = [e.split("=", 1)[1] for e in extra]
                    (cell,), _ = options_to_cells(methods=method, sparsity=None, seeds=seed, width=str(width),
                                                   profile="width", config=None, sets=sets, options={},
                                                   data_dir=args.data_dir)
                    if cell.hash in done_hashes(args.results):
                        continue
                    need = SECONDS[width][method]
                    if time.time() + need > deadline:
                        print(f"stop: {method} w{width} seed {seed} {' '.join(sets)} needs ~{need} s, past the "
                              f"deadline", file=sys.stderr)
                        return 0
                    cmd = ["sjlt", "bench", "--profile", "width", "--data-dir", args.data_dir, "--results",
                           args.results, "--methods", method, "--width", str(width), "--seeds", seed,
                           "--threads", "2", "--json", *extra]
                    print(" ".join(cmd), file=sys.stderr, flush=True)
                    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
