"""Accuracy against width: a supermask search's gap to its baseline, and where it would close.

Rows of a width grid (``sjlt bench --width 0.0625,0.125,0.25``) become:

- :func:`width_series`: per method variant (a method plus the search options its cell
  sets, e.g. ``binw-slt +iterand_period=100``), the mean test top-1 and its 95 %
  t-interval over seeds at every width;
- :func:`width_gaps`: the paired difference A - B (same seed, same width, B the plain
  baseline method) per width, with its 95 % t-interval;
- :func:`gap_trend`: an ordinary least-squares line of the per-seed differences against
  ``log2(width)``, the width where the line reaches zero and Fieller's 95 % interval for
  it. The crossing is an extrapolation of a straight line in ``log2(width)``; when the
  slope's interval includes 0, or the crossing lies beyond 8x the largest width measured,
  the honest answer is "no crossing within 8x the largest width measured".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .stats import summarize, t_quantile

__all__ = ["SEARCH_KEYS", "variant", "width_series", "width_gaps", "gap_trend", "EXTRAPOLATION_LIMIT"]

#: the supermask search options of a cell (they appear in a stored cell only when set)
SEARCH_KEYS = ("score_optimizer", "iterand_period", "iterand_rate", "freeze_pruned", "freeze_kept",
               "layer_density")
#: a crossing further than this factor beyond the largest measured width is not reported as one
EXTRAPOLATION_LIMIT = 8.0


def _flat(row: dict) -> dict:
    from ..cell import flatten

    return flatten(row.get("config") or {})


def _top1(row: dict, metric: str) -> float | None:
    v = (row.get("metrics") or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def variant(cfg: dict) -> str:
    """'binw-slt' or 'binw-slt +iterand_period=100,iterand_rate=0.1': a method and its set searches."""
    extra = [f"{k}={cfg[k]:g}" if isinstance(cfg[k], float) else f"{k}={cfg[k]}" for k in SEARCH_KEYS if k in cfg]
    return str(cfg.get("method")) + (" +" + ",".join(extra) if extra else "")


def _done(rows: Iterable[dict]) -> list[dict]:
    return [r for r in rows if r.get("status", "done") == "done" and _flat(r).get("width") is not None]


def width_series(rows: Iterable[dict], metric: str = "top1") -> dict[str, list[dict[str, Any]]]:
    """``{variant: [{width, mean, lo, hi, n, seeds}, ...]}`` sorted by width (done rows only)."""
    by: dict[str, dict[float, dict[Any, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in _done(rows):
        c = _flat(r)
        v = _top1(r, metric)
        if v is not None:
            by[variant(c)][float(c["width"])][c.get("seed")] = v
    out: dict[str, list[dict[str, Any]]] = {}
    for name, widths in by.items():
        out[name] = []
        for w in sorted(widths):
            s = summarize(widths[w].values())
            out[name].append({"width": w, "mean": s.mean, "lo": s.lo, "hi": s.hi, "n": s.n,
                              "seeds": sorted(widths[w])})
    return out


def _partner(a_cfg: dict, b_rows: Sequence[tuple[dict, dict]]) -> dict | None:
    """The B row whose every config field (but the method) equals A's: same width, seed, data, recipe."""
    for cfg, row in b_rows:
        if all(k == "method" or a_cfg.get(k) == v for k, v in cfg.items()):
            return row
    return None


def width_gaps(rows: Iterable[dict], a: str, b: str, metric: str = "top1") -> list[dict[str, Any]]:
    """Paired ``a - b`` per width, ``a`` a variant (:func:`variant`), ``b`` a plain method.

    Each entry: ``width``, ``n``, ``mean``, ``lo``, ``hi`` (95 % t-interval), ``seeds`` and
    the per-seed ``diffs``.
    """
    rows = _done(rows)
    b_rows = [(c, r) for r in rows if variant(c := _flat(r)) == b]
    per_width: dict[float, dict[Any, float]] = defaultdict(dict)
    for r in rows:
        c = _flat(r)
        if variant(c) != a:
            continue
        partner = _partner({k: v for k, v in c.items() if k not in SEARCH_KEYS}, b_rows)
        va, vb = _top1(r, metric), _top1(partner, metric) if partner else None
        if va is not None and vb is not None:
            per_width[float(c["width"])][c.get("seed")] = va - vb
    out = []
    for w in sorted(per_width):
        d = per_width[w]
        s = summarize(d.values())
        out.append({"a": a, "b": b, "metric": metric, "width": w, "n": s.n, "mean": s.mean, "lo": s.lo,
                    "hi": s.hi, "seeds": sorted(d), "diffs": [d[k] for k in sorted(d)]})
    return out


def gap_trend(gaps: Sequence[dict[str, Any]], limit: float = EXTRAPOLATION_LIMIT) -> dict[str, Any] | None:
    """OLS of every per-seed difference on ``log2(width)``: slope per doubling, intercept at
    width 1, their 95 % intervals, and the zero crossing with Fieller's 95 % interval.

    None with fewer than two widths or fewer than three points. ``crossing`` is the width
    where the fitted gap is 0 (None when the slope is 0); ``crossing_lo`` / ``crossing_hi``
    bound it (None: unbounded on that side); ``verdict`` says in words what can be claimed.
    """
    xs, ys = [], []
    for g in gaps:
        for d in g["diffs"]:
            xs.append(math.log2(g["width"]))
            ys.append(d)
    n = len(xs)
    if n < 3 or len({x for x in xs}) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    resid = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    s2 = resid / (n - 2)
    var_b = s2 / sxx
    var_a = s2 * (1.0 / n + mx * mx / sxx)
    cov_ab = -mx * s2 / sxx
    t = t_quantile(0.975, n - 2)
    out: dict[str, Any] = {
        "n": n, "df": n - 2, "slope": slope, "slope_lo": slope - t * math.sqrt(var_b),
        "slope_hi": slope + t * math.sqrt(var_b), "gap_at_1": icpt, "gap_at_1_lo": icpt - t * math.sqrt(var_a),
        "gap_at_1_hi": icpt + t * math.sqrt(var_a), "max_width": max(g["width"] for g in gaps),
        "crossing": None, "crossing_lo": None, "crossing_hi": None,
    }
    if slope != 0:
        out["crossing"] = 2.0 ** (-icpt / slope)
    # Fieller: the x with (a + b x)^2 <= t^2 Var(a + b x), a quadratic A x^2 + 2 B x + C <= 0
    qa, qb, qc = slope ** 2 - t * t * var_b, icpt * slope - t * t * cov_ab, icpt ** 2 - t * t * var_a
    disc = qb * qb - qa * qc
    if qa > 0 and disc >= 0:  # the slope is significant: a bounded interval
        r1, r2 = (-qb - math.sqrt(disc)) / qa, (-qb + math.sqrt(disc)) / qa
        out["crossing_lo"], out["crossing_hi"] = 2.0 ** min(r1, r2), 2.0 ** max(r1, r2)
    out["verdict"] = _trend_verdict(out, limit)
    return out


def _trend_verdict(t: dict[str, Any], limit: float) -> str:
    far = t["max_width"] * limit
    if t["slope_lo"] <= 0 <= t["slope_hi"]:
        return (f"no trend: the slope's 95 % interval includes 0, so no crossing can be claimed "
                f"(none within {limit:g}x the largest width measured, {far:g})")
    if t["crossing"] is None or t["crossing_lo"] is None:
        return f"no crossing within {limit:g}x the largest width measured ({far:g})"
    if t["crossing"] > far:
        return f"no crossing within {limit:g}x the largest width measured ({far:g})"
    return (f"the fitted gap reaches 0 at width {t['crossing']:.3g} [{t['crossing_lo']:.3g}, "
            f"{t['crossing_hi']:.3g}] (an extrapolation of a line in log2 width)")
