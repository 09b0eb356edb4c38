"""Statistics that make a result citable (docs/protocol.md): intervals over seeds, paired claims.

* :func:`summarize`: mean, sample standard deviation, n and the 95 % Student-t interval
  ``mean ± t_{0.975, n-1} · std / sqrt(n)`` of a list of values.
* :func:`paired`: for methods A and B run with the same seeds, the per-seed differences
  ``d_i = A_i - B_i`` summarized the same way.
* :func:`verdict`: a claim "A > B" (direction +1) or "A < B" (-1) is *supported* when the
  interval of the difference excludes 0 in the claimed direction, *refuted* when it
  excludes 0 the other way, else *undecided at this n*.
* :func:`paired_table` / :func:`claims_table`: those over the rows of a results file. A
  row's partner is its own cell with the other method (``cell.replace(method=B)``, the
  same rule as a cell's baselines), so pairs share seed, data order and initial draws.
  A collapsed cell (either side) is no data point for an energy comparison.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..cell import canonical_json
from ..methods import method_rank

__all__ = ["Summary", "summarize", "t_quantile", "paired", "verdict", "Claim", "CLAIMS", "paired_table",
           "claims_table", "CONFIDENCE"]

CONFIDENCE = 0.95


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (4.303 at 0.975, df 2)."""
    if df < 1:
        raise ValueError(f"degrees of freedom {df!r} must be at least 1")
    from scipy.stats import t  # scipy comes with scikit-learn, a dependency

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (None under 2 values), n and the 95 % t-interval (None under 2 values)."""

    mean: float | None
    std: float | None
    n: int
    ci95: float | None  # half-width: t_{0.975, n-1} * std / sqrt(n)
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Iterable[float]) -> Summary:
    """:class:`Summary` of ``values`` (finite numbers; others are dropped)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return Summary(None, None, 0, None, None, None)
    mean = statistics.fmean(vals)
    if n == 1:
        return Summary(mean, None, 1, None, None, None)
    std = statistics.stdev(vals)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Summary(mean, std, n, half, mean - half, mean + half)


def paired(a: dict[Any, float], b: dict[Any, float]) -> tuple[Summary, list]:
    """(summary of ``a[s] - b[s]`` over the keys (seeds) both have, those keys sorted)."""
    keys = sorted(k for k in a if k in b and a[k] is not None and b[k] is not None)
    return summarize(a[k] - b[k] for k in keys), keys


def verdict(s: Summary, direction: int) -> str:
    """'supported' / 'refuted' / 'undecided at n=N' for the claim sign(A - B) == ``direction``."""
    if s.n == 0:
        return "not run"
    if s.lo is None or s.hi is None:
        return f"undecided at n={s.n}"
    if s.lo > 0 or s.hi < 0:
        return "supported" if (s.lo > 0) == (direction > 0) else "refuted"
    return f"undecided at n={s.n}"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``a`` vs ``b`` on ``metric``, with the claimed sign of a - b."""

    a: str
    b: str
    metric: str  # a metrics key: top1 | energy_pj
    direction: int  # +1: a > b claimed; -1: a < b claimed
    text: str


# The pairs the BinW-SLT paper (2311.12060) claims; paper top-1 in docs/design.md §4.
CLAIMS: tuple[Claim, ...] = (
    Claim("binw-slt", "bnn-lt", "top1", +1, "BinW-SLT more accurate than MPT-1/32 (paper: 91.82 vs 91.07)"),
    Claim("binw-slt", "bnn-act-lt", "top1", +1, "BinW-SLT more accurate than MPT-1/1 (paper: 91.82 vs 83.96)"),
    Claim("binw-slt", "snn", "top1", +1, "BinW-SLT at least as accurate as the dense SNN (paper: 91.82 vs 91.78)"),
    Claim("binw-slt", "snn-imp", "top1", +1, "BinW-SLT at least as accurate as the SNN IMP ticket"),
    Claim("binw-slt", "bnn-lt", "energy_pj", -1, "BinW-SLT cheaper than MPT-1/32"),
    Claim("binw-slt", "bnn-act-lt", "energy_pj", -1, "BinW-SLT cheaper than MPT-1/1"),
    Claim("binw-slt", "snn", "energy_pj", -1, "BinW-SLT cheaper than the dense SNN (paper: 1.86x)"),
    Claim("binw-slt", "snn-imp", "energy_pj", -1, "BinW-SLT cheaper than the SNN IMP ticket"),
)

ENERGY_METRICS = ("energy_pj",)


def _flat(cfg: dict) -> dict:
    from ..cell import flatten

    return flatten(cfg or {})


def _partner_hash(row: dict, method: str) -> str | None:
    """Hash of this row's cell with ``method`` instead of its own (None for rows without a cell)."""
    full = (row.get("cell") or {}).get("cell")
    if not full:
        return None
    from ..cell import Cell
    from ..methods import resolve

    try:
        return resolve(Cell.from_dict(full).replace(method=method)).hash
    except Exception:  # noqa: BLE001 - a method or plugin not installed here: no partner
        return None


def _value(row: dict, metric: str) -> float | None:
    m = row.get("metrics") or {}
    v = m.get(metric)
    if metric in ENERGY_METRICS and m.get("collapsed"):
        return None  # a collapsed cell is no data point for energy
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _sparse(row: dict) -> bool:
    return "sparsity" in ((row.get("cell") or {}).get("uses") or ())


def _pair_group(row: dict) -> tuple:
    """What a paired comparison is reported per: arch, dataset and the A row's target sparsity."""
    c = _flat(row.get("config"))
    return (c.get("arch"), c.get("dataset"), c.get("sparsity") if _sparse(row) else None)


def compare(rows: Sequence[dict], a: str, b: str, metric: str) -> list[dict[str, Any]]:
    """Paired ``a - b`` on ``metric``, one entry per (arch, dataset, a's sparsity, setting)."""
    done = [r for r in rows if r.get("status", "done") == "done"]
    by_hash = {r.get("config_hash"): r for r in done}
    groups: dict[tuple, dict[str, Any]] = {}
    for r in done:
        c = _flat(r.get("config"))
        if c.get("method") != a:
            continue
        h = _partner_hash(r, b)
        partner = by_hash.get(h) if h else None
        key = _pair_group(r) + (_setting_key(c),)
        g = groups.setdefault(key, {"a": {}, "b": {}, "width": c.get("width")})
        seed = c.get("seed")
        g["a"][seed] = _value(r, metric)
        if partner is not None:
            g["b"][seed] = _value(partner, metric)
    out = []
    for (arch, dataset, sparsity, _), g in groups.items():
        s, seeds = paired(g["a"], g["b"])
        out.append({"a": a, "b": b, "metric": metric, "arch": arch, "dataset": dataset, "sparsity": sparsity,
                    "width": g["width"], "seeds": seeds, "diffs": [g["a"][k] - g["b"][k] for k in seeds],
                    **s.to_dict(),
                    "a_mean": summarize(g["a"][k] for k in seeds).mean,
                    "b_mean": summarize(g["b"][k] for k in seeds).mean})
    out.sort(key=lambda e: (str(e["arch"]), str(e["dataset"]), e["sparsity"] if e["sparsity"] is not None else -1,
                            e["width"] if isinstance(e["width"], (int, float)) else -1))
    return out


_SETTING_SKIP = {"method", "seed", "sparsity"}


def _setting_key(c: dict) -> str:
    return canonical_json({k: v for k, v in c.items() if k not in _SETTING_SKIP})


def _orient(rows: Sequence[dict], m1: str, m2: str) -> tuple[str, str]:
    """(A, B) of a generic pair: the sparse method as A (its partner is then at its sparsity),
    else the later one in the method order (binw-slt last: 'binw-slt - X')."""
    sparse = {_flat(r.get("config")).get("method"): _sparse(r) for r in rows}
    if sparse.get(m1) != sparse.get(m2):
        return (m1, m2) if sparse.get(m1) else (m2, m1)
    return (m2, m1) if method_rank(m1) < method_rank(m2) else (m1, m2)


def paired_table(rows: Sequence[dict], metrics: Sequence[str] = ("top1", "energy_pj")) -> list[dict[str, Any]]:
    """Paired differences between every two methods of ``rows`` that share a seed."""
    rows = list(rows)
    methods = sorted({_flat(r.get("config")).get("method") for r in rows if r.get("status", "done") == "done"},
                     key=method_rank)
    out = []
    for i, m1 in enumerate(methods):
        for m2 in methods[i + 1:]:
            a, b = _orient(rows, m1, m2)
            for metric in metrics:
                out += [e for e in compare(rows, a, b, metric) if e["n"] > 0]
    return out


def claims_table(rows: Sequence[dict], claims: Sequence[Claim] = CLAIMS) -> list[dict[str, Any]]:
    """Each paper claim with our paired difference, its 95 % interval and the verdict (docs/protocol.md §3).

    A claim whose methods did not both run (with a shared seed) reads 'not run'; an energy
    claim whose pairs all involve a collapsed cell reads 'no data: M collapsed'.
    """
    rows = list(rows)
    out = []
    for claim in claims:
        paired_entries = compare(rows, claim.a, claim.b, claim.metric)
        entries = [e for e in paired_entries if e["n"] > 0]
        if not entries:
            gone = _all_collapsed(rows, (claim.a, claim.b)) if paired_entries else []
            out.append({"claim": claim.text, "a": claim.a, "b": claim.b, "metric": claim.metric,
                        "direction": claim.direction, "arch": None, "dataset": None, "sparsity": None,
                        "width": None, "diffs": [],
                        "n": 0, "mean": None, "std": None, "ci95": None, "lo": None, "hi": None, "seeds": [],
                        "a_mean": None, "b_mean": None,
                        "verdict": f"no data: {', '.join(gone)} collapsed" if gone else "not run"})
            continue
        for e in entries:
            s = Summary(e["mean"], e["std"], e["n"], e["ci95"], e["lo"], e["hi"])
            out.append({"claim": claim.text, "direction": claim.direction, **e, "verdict": verdict(s, claim.direction)})
    return out


def _all_collapsed(rows: Sequence[dict], methods: Sequence[str]) -> list[str]:
    """Those of ``methods`` that ran and whose every done row is flagged collapsed."""
    out = []
    for m in methods:
        flags = [bool((r.get("metrics") or {}).get("collapsed")) for r in rows
                 if r.get("status", "done") == "done" and _flat(r.get("config")).get("method") == m]
        if flags and all(flags):
            out.append(m)
    return out


def format_difference(e: dict[str, Any]) -> str:
    """'+3.21 [+1.02, +5.40]' (accuracy in points, energy in pJ), or the mean alone at n=1."""
    if e.get("mean") is None:
        return "–"
    scale, fmt = (100.0, "+.2f") if e["metric"] == "top1" else (1.0, "+.3g")
    text = format(e["mean"] * scale, fmt)
    if e.get("lo") is not None:
        text += f" [{format(e['lo'] * scale, fmt)}, {format(e['hi'] * scale, fmt)}]"
    return text
