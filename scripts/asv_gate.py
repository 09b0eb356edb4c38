#!/usr/bin/env python3
"""Base vs head benchmark gate for the asv suite: signal, not noise (docs/asv.md).

``compare BASE HEAD``: benchmarks two commits with the code of each commit (exported
with ``git archive`` and put first on the benchmarks' ``PYTHONPATH`` through
``ASV_PYTHONPATH``; the benchmark suite itself is always this checkout's ``bench/``),
then judges the difference:

- **deterministic metrics** (every ``track_*`` but ``track_time_*``: error, energy,
  bits, bytes) are compared exactly. Any difference is a change of the numerics and is
  flagged (``CHANGED``, with both values): the gate fails.
- **timings** (``time_*``) are measured in ``--rounds`` interleaved rounds (base, head,
  head, base, base, head, ... each an ``asv run`` of the timing benchmarks with
  ``-a rounds=1``, samples appended), each round taking 5-20 samples per benchmark. A
  timing is a regression (``SLOWER``, the gate fails) only when BOTH the fastest sample
  and the median sample of the head are more than ``--factor`` (default 1.5) times
  those of the base. A busy neighbour on shared CI hardware slows some samples and
  shifts the median; it rarely slows the fastest of 10-60 samples by 1.5x as well, and
  interleaving spreads slow phases over both sides. ``FASTER`` is reported, never fails.
- **wall-clock tracks** (``track_time_*``: one sample per training run) are shown with
  their ratio and never gated.
- a benchmark that failed on either side fails the gate; one that exists on one side
  only is listed (``new`` / ``gone``).

``selftest``: proves the rule on this machine: HEAD vs HEAD must pass, and HEAD vs
HEAD with ``SJLT_ASV_SLOWDOWN=2`` (every ``time_*`` benchmark runs 2x slower, a
test-only knob of bench/benchmarks.py) must flag every timing as SLOWER and nothing
else. The three sides run interleaved, so one self-test costs 1.5 comparisons.

``judge A.json B.json``: the rule on two asv results files.

Everything goes under ``--out`` (default ``.asv/gate``): ``src/<sha>`` (exported code),
``results-<side>/`` (asv results per side), ``results/`` (both sides together, for
``asv compare`` and ``asv publish``), ``torch_extensions/<sha>`` (each commit's C++
kernels, built by torch on first use), ``html/`` (``--publish``: the dashboard, vendored
for offline viewing), ``gate.md`` (the verdict table). Exit status: 0 pass, 1 the gate
flagged something (or the self-test failed), 2 usage or asv errors.

Run from the repository root with the environment of ``scripts/install.sh``; the grid
follows the ``SJLT_ASV_*`` knobs (``scripts/asv_quick.sh`` sets ``SJLT_ASV_QUICK=1``).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FACTOR = 1.5
DEFAULT_ROUNDS = 3


# ---------------------------------------------------------------------------- the rule


def kind_of(name: str) -> str:
    """timing | wallclock | exact | info, from the benchmark's name (bench/benchmarks.py)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf.startswith(("time_", "timeraw_")):
        return "timing"
    if leaf.startswith("track_time"):
        return "wallclock"
    if leaf.startswith(("track_", "mem_")):
        return "exact"
    return "info"  # peakmem_: whole-process RSS, not a model quantity


@dataclass
class Entry:
    """One benchmark x parameter combination of one results file."""

    value: float | None
    samples: list[float] = field(default_factory=list)
    unit: str = ""

    @property
    def failed(self) -> bool:
        return self.value is None or (isinstance(self.value, float) and math.isnan(self.value))


def load_results(path: Path, benchmarks: dict | None = None) -> dict[tuple[str, str], Entry]:
    """{(benchmark name, "param1, param2"): Entry} of one asv results file."""
    data = json.loads(Path(path).read_text())
    cols = data["result_columns"]
    out: dict[tuple[str, str], Entry] = {}
    for name, row in data.get("results", {}).items():
        entry = dict(zip(cols, row))
        params = entry.get("params") or []
        values = entry.get("result")
        samples = entry.get("samples")
        combos = [", ".join(map(_unquote, c)) for c in itertools.product(*params)] if params else [""]
        if not isinstance(values, list):
            values, samples = [values], [samples] if samples is not None else None
        unit = (benchmarks or {}).get(name, {}).get("unit", "")
        for i, combo in enumerate(combos):
            v = values[i] if i < len(values) else None
            s = samples[i] if samples and i < len(samples) and samples[i] else []
            out[(name, combo)] = Entry(v, [x for x in s if x is not None], unit)
    return out


def _unquote(param: str) -> str:
    """asv stores parameter values as their repr: 'vgg16' -> vgg16."""
    try:
        value = ast.literal_eval(param)
    except (ValueError, SyntaxError):
        return str(param)
    return value if isinstance(value, str) else str(param)


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "failed"
    if unit == "seconds":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value * 1e9:.3g} ns"
    if unit == "bytes":
        return f"{int(value):,} B"
    # values arrive rounded to what they resolve (bench/benchmarks.py): show all digits,
    # an exact comparison must be readable from the table
    text = f"{int(value):,}" if float(value).is_integer() else f"{value:,}"
    return f"{text} {unit}".strip() if unit and unit != "unit" else text


@dataclass
class Row:
    name: str
    params: str
    kind: str
    verdict: str  # same | SLOWER | faster | CHANGED | FAILED | info | new | gone
    base: str
    head: str
    ratio: str

    @property
    def bad(self) -> bool:
        return self.verdict in ("SLOWER", "CHANGED", "FAILED")


def judge(base: dict, head: dict, factor: float = DEFAULT_FACTOR) -> list[Row]:
    rows = []
    for key in sorted(set(base) | set(head)):
        name, params = key
        kind = kind_of(name)
        b, h = base.get(key), head.get(key)
        unit = (h or b).unit
        short = name.split(".", 1)[-1] if name.startswith("benchmarks.") else name
        if b is None or h is None:
            rows.append(Row(short, params, kind, "new" if b is None else "gone",
                            "-" if b is None else _fmt(b.value, unit), "-" if h is None else _fmt(h.value, unit), ""))
            continue
        if b.failed or h.failed:
            rows.append(Row(short, params, kind, "FAILED", _fmt(b.value, unit), _fmt(h.value, unit), ""))
            continue
        if kind == "timing":
            bs, hs = b.samples or [b.value], h.samples or [h.value]
            r_min = min(hs) / min(bs)
            r_med = statistics.median(hs) / statistics.median(bs)
            if r_min > factor and r_med > factor:
                verdict = "SLOWER"
            elif r_min < 1 / factor and r_med < 1 / factor:
                verdict = "faster"
            else:
                verdict = "same"
            ratio = f"min x{r_min:.2f}, median x{r_med:.2f} (n={len(bs)}/{len(hs)})"
            rows.append(Row(short, params, kind, verdict, _fmt(statistics.median(bs), unit),
                            _fmt(statistics.median(hs), unit), ratio))
        elif kind == "exact":
            same = b.value == h.value
            ratio = "=" if same else (f"x{h.value / b.value:.4g}" if b.value else "from 0")
            rows.append(Row(short, params, kind, "same" if same else "CHANGED", _fmt(b.value, unit),
                            _fmt(h.value, unit), ratio))
        else:
            ratio = f"x{h.value / b.value:.2f}" if b.value else ""
            rows.append(Row(short, params, kind, "info", _fmt(b.value, unit), _fmt(h.value, unit), ratio))
    return rows


_KIND_TEXT = {"timing": "timing (noise band)", "exact": "exact", "wallclock": "wall clock, not gated",
              "info": "not gated"}


def render(rows: list[Row], title: str, factor: float) -> str:
    head = ["", "benchmark", "params", "kind", "base", "head", "ratio"]
    body = [["!!" if r.bad else "", r.name, r.params, _KIND_TEXT[r.kind], r.base, r.head,
             f"{r.verdict}  {r.ratio}".strip()] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [f"### {title}", "", line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    bad = [r for r in rows if r.bad]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("SLOWER", "CHANGED", "FAILED")}
    out += ["", (f"**FAIL**: {counts['SLOWER']} timing(s) slower by > x{factor} (min and median), "
                 f"{counts['CHANGED']} deterministic metric(s) changed, {counts['FAILED']} failed")
            if bad else
            f"**PASS**: no timing slower by > x{factor} (min and median), no deterministic metric changed, "
            f"nothing failed ({len(rows)} rows)"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------- running asv


@dataclass
class Side:
    label: str
    sha: str
    src: Path
    slowdown: float = 1.0


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def export_source(sha: str, out: Path) -> Path:
    """The package directory of commit sha, unpacked under out/src/<sha> (cached)."""
    dest = out / "src" / sha
    if (dest / ".complete").is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", sha, "spikingjelly_lt"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / ".complete").write_text(sha + "\n")
    return dest


def write_config(out: Path, results: Path, html: Path, branches: list[str]) -> Path:
    """The project config with this run's results/html folders (absolute paths)."""
    from asv import util

    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(results_dir=str(results), html_dir=str(html), branches=branches)
    for key in ("repo", "benchmark_dir"):
        conf[key] = str((ROOT / conf[key]).resolve())
    conf["pythons"] = [str((ROOT / p).resolve()) if os.sep in p else p for p in conf.get("pythons", [])]
    path = out / f"asv.conf.{results.name}.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


class Runner:
    def __init__(self, out: Path, python: str, bench: str | None, log, extensions: Path | None = None):
        self.out, self.python, self.bench, self.log = out, python, bench, log
        self.extensions = extensions or out / "torch_extensions"

    def asv(self, args: list[str], env: dict | None = None) -> int:
        cmd = [self.python, "-m", "asv", *args]
        self.log(f"$ {' '.join(cmd)}")
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(self.out / "asv.log", "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n")
        if proc.returncode != 0:
            self.log(proc.stdout[-3000:])
        return proc.returncode

    def side_config(self, side: Side) -> Path:
        results = self.out / f"results-{side.label}"
        return write_config(self.out, results, self.out / "html", [side.sha])

    def run_side(self, side: Side, first: bool, timing_regex: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SJLT_ASV_SLOWDOWN")}
        env["ASV_PYTHONPATH"] = str(side.src)
        # torch builds the package's C++ kernels (spikingjelly_lt._native) into one folder
        # per extension name; two sides sharing it would rebuild at every alternation (the
        # source path changes) or load the other side's kernel: one folder per commit
        env["TORCH_EXTENSIONS_DIR"] = str(self.extensions / side.sha[:12])
        if side.slowdown != 1.0:
            env["SJLT_ASV_SLOWDOWN"] = str(side.slowdown)
        args = ["run", "--config", str(self.side_config(side)), "--environment", f"existing:{self.python}",
                "--set-commit-hash", side.sha, "--show-stderr", "-a", "rounds=1"]
        if first:
            args += ["--record-samples"] + (["--bench", self.bench] if self.bench else [])
        else:
            args += ["--append-samples", "--bench", timing_regex]
        return self.asv(args, env)

    def results_file(self, side: Side) -> Path:
        files = sorted((self.out / f"results-{side.label}").glob(f"*/{side.sha[:8]}-*.json"))
        if len(files) != 1:
            raise RuntimeError(f"expected one results file for {side.label} ({side.sha[:8]}), found {files}")
        return files[0]

    def benchmarks(self, side: Side) -> dict:
        path = self.out / f"results-{side.label}" / "benchmarks.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def run_interleaved(runner: Runner, sides: list[Side], rounds: int, log) -> None:
    """Round 1: every selected benchmark once per side. Rounds 2..n: the timings only,
    samples appended, the side order reversed every other round (a-b, b-a, a-b, ...)."""
    config = runner.side_config(sides[0])
    if runner.asv(["machine", "--yes", "--config", str(config)]) != 0:
        raise RuntimeError("asv machine failed")
    timing_regex = None
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            t0 = time.monotonic()
            rc = runner.run_side(side, first=(r == 0), timing_regex=timing_regex)
            log(f"round {r + 1}/{rounds} {side.label}: asv run exited {rc} ({time.monotonic() - t0:.0f} s)")
            if rc != 0 and r > 0:  # round 1 failures are reported per benchmark (FAILED rows)
                raise RuntimeError(f"asv run of round {r + 1} for {side.label} failed (see {runner.out / 'asv.log'})")
        if r == 0:
            names = sorted(n for n in runner.benchmarks(sides[0]) if n != "version" and kind_of(n) == "timing"
                           and (not runner.bench or re.search(runner.bench, n)))
            if not names:
                log("no timing benchmarks selected: one round is all there is")
                return
            # asv matches a parameterized benchmark as "name(p1, p2)"
            timing_regex = "^(" + "|".join(re.escape(n) for n in names) + r")(\(|$)"


def _sides_rows(runner: Runner, a: Side, b: Side, factor: float) -> list[Row]:
    bm = runner.benchmarks(b) or runner.benchmarks(a)
    return judge(load_results(runner.results_file(a), bm), load_results(runner.results_file(b), bm), factor)


def combine(runner: Runner, sides: list[Side]) -> Path:
    """Both sides' results in one folder (results/) for asv compare and asv publish."""
    dest = runner.out / "results"
    if dest.exists():
        shutil.rmtree(dest)
    for side in sides:
        src = runner.out / f"results-{side.label}"
        for path in src.rglob("*.json"):
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return dest


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _prepare(args) -> Runner:
    out = Path(args.out).resolve()
    if out.exists() and not args.keep:
        for child in out.iterdir():  # keep the sources and built kernels: they are keyed by commit
            if child.name not in ("src", "torch_extensions"):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    extensions = Path(args.extensions_dir).resolve() if args.extensions_dir else None
    return Runner(out, args.python, args.bench, _log, extensions)


def cmd_compare(args) -> int:
    runner = _prepare(args)
    base_sha, head_sha = git("rev-parse", f"{args.base}^{{commit}}"), git("rev-parse", f"{args.head}^{{commit}}")
    base = Side("base", base_sha, export_source(base_sha, runner.out))
    head = Side("head", head_sha, export_source(head_sha, runner.out), args.slowdown_head)
    run_interleaved(runner, [base, head], args.rounds, _log)
    rows = _sides_rows(runner, base, head, args.factor)
    title = (f"asv gate: base {base_sha[:8]} vs head {head_sha[:8]}"
             + (f" (head with SJLT_ASV_SLOWDOWN={args.slowdown_head:g})" if args.slowdown_head != 1.0 else "")
             + f", {args.rounds} interleaved rounds")
    report = render(rows, title, args.factor)
    (runner.out / "gate.md").write_text(report)
    print(report)
    if base_sha != head_sha:
        results = combine(runner, [base, head])
        config = write_config(runner.out, results, runner.out / "html", [head_sha])
        if args.publish:
            subprocess.run([args.python, str(ROOT / "scripts" / "asv_publish.py"), "--config", str(config)],
                           cwd=ROOT, check=True)
    return 1 if any(r.bad for r in rows) else 0


def cmd_selftest(args) -> int:
    runner = _prepare(args)
    sha = git("rev-parse", "HEAD^{commit}")
    src = export_source(sha, runner.out)
    base, head, slow = Side("base", sha, src), Side("head", sha, src), Side("slow", sha, src, args.slowdown)
    run_interleaved(runner, [base, head, slow], args.rounds, _log)
    noop = _sides_rows(runner, base, head, args.factor)
    slowed = _sides_rows(runner, base, slow, args.factor)
    title = f"{sha[:8]} vs the same code, {args.rounds} interleaved rounds"
    report = (render(noop, f"self-test, no-op: {title} (must PASS)", args.factor) + "\n"
              + render(slowed, f"self-test, slowdown: {title} with SJLT_ASV_SLOWDOWN={args.slowdown:g} "
                               f"(every timing must be SLOWER, nothing else flagged)", args.factor))
    problems = [f"no-op flagged {r.name} ({r.params}): {r.verdict}" for r in noop if r.bad]
    timings = [r for r in slowed if r.kind == "timing"]
    if not timings:
        problems.append("no timing benchmark ran: nothing shows that a slowdown is caught")
    problems += [f"slowdown missed {r.name} ({r.params}): {r.verdict} {r.ratio}" for r in timings
                 if r.verdict != "SLOWER"]
    problems += [f"slowdown flagged a non-timing {r.name} ({r.params}): {r.verdict}" for r in slowed
                 if r.kind != "timing" and r.bad]
    report += "\n" + ("**self-test FAILED**:\n- " + "\n- ".join(problems) if problems else
                      "**self-test passed**: the no-op passes and the injected slowdown is caught") + "\n"
    (runner.out / "gate.md").write_text(report)
    print(report)
    return 1 if problems else 0


def cmd_judge(args) -> int:
    bm = json.loads(Path(args.benchmarks).read_text()) if args.benchmarks else None
    rows = judge(load_results(Path(args.a), bm), load_results(Path(args.b), bm), args.factor)
    print(render(rows, f"{args.a} vs {args.b}", args.factor))
    return 1 if any(r.bad for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved rounds per side (default 3)")
        p.add_argument("--factor", type=float, default=DEFAULT_FACTOR, help="timing noise band (default 1.5)")
        p.add_argument("--bench", help="regex: only the benchmarks it matches (asv run --bench)")
        p.add_argument("--out", default=str(ROOT / ".asv" / "gate"), help="work folder (default .asv/gate)")
        p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
        p.add_argument("--keep", action="store_true", help="do not clear --out first")
        p.add_argument("--extensions-dir", help="where each commit's C++ kernels are built, one folder per "
                                                "commit (default <out>/torch_extensions)")

    p = sub.add_parser("compare", help="BASE vs HEAD")
    p.add_argument("base")
    p.add_argument("head", nargs="?", default="HEAD")
    p.add_argument("--slowdown-head", type=float, default=1.0,
                   help="TEST ONLY: run the head's timings this many times slower (SJLT_ASV_SLOWDOWN)")
    p.add_argument("--publish", action="store_true", help="publish both sides to <out>/html, vendored for offline use")
    common(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("selftest", help="HEAD vs HEAD passes; HEAD vs HEAD slowed down is caught")
    p.add_argument("--slowdown", type=float, default=2.0)
    common(p)
    p.set_defaults(func=cmd_selftest)
    p = sub.add_parser("judge", help="the rule on two asv results files")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--factor", type=float, default=DEFAULT_FACTOR)
    p.add_argument("--benchmarks", help="benchmarks.json (for units)")
    p.set_defaults(func=cmd_judge)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        _log(f"asv gate: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
