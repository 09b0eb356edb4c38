"""The aggregated benchmark matrix: result rows -> one entry per (arch, dataset, method, target
sparsity[, setting]) with means, spreads and intervals over seeds, the SNN savings filled in,
the published reference numbers, the learning curves, and the columns that render an entry.

Rows are the dicts :meth:`ResultStore.rows` returns (``config``, ``metrics``, ``status``,
``reason``, ``config_hash``). Missing or None metrics render as "–". Energy ratios
(``energy_x_ann``, ``energy_x_snn``) are savings: the dense ANN's / SNN's energy divided
by this cell's, so the paper's "8.92× saving vs ANN" reads 8.92× here.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spikingjelly_lt.cell import canonical_json, flatten
from spikingjelly_lt.energy.savings import saving, stored_energy_pj
from spikingjelly_lt.methods import method_rank
from spikingjelly_lt.results.stats import summarize

__all__ = ["DASH", "METRIC_KEYS", "REFERENCE_TOP1", "MatrixColumn", "flat_rows", "fill_snn_savings", "matrix_table",
           "matrix_columns", "format_matrix", "curves", "convergence"]

DASH = "–"
METRIC_KEYS = (
    "top1",
    "val_top1",
    "sparsity",
    "energy_pj",
    "energy_x_ann",
    "energy_x_snn",
    "mean_firing_rate",
    "weight_bits",
    "model_bytes",
    "time_to_ticket_s",
    "train_seconds",
    "images_per_s",
)
_GROUP_KEYS = ("arch", "dataset", "method", "sparsity")
# The target sparsity (config) keeps the name ``sparsity`` in a matrix entry.
_ENTRY_NAME = {"sparsity": "achieved_sparsity"}
# Published top-1 % (docs/design.md §4): (arch, dataset, method, target sparsity).
# Companion paper 2311.12060 Table 1 (ResNet-19, T=4, ConnS at 50 % sparsity) and
# Kim et al. ECCV'22 (IMP, T=5, 300 epochs, CIFAR-10).
REFERENCE_TOP1: dict[tuple[str, str, str, float], float] = {
    **{
        ("resnet19", ds, m, sp): v
        for m, sp, c10, c100 in (
            ("ann", 0.0, 92.05, 76.74),
            ("bnn", 0.0, 91.54, 74.42),
            ("bnn-act", 0.0, 86.74, 66.60),
            ("snn", 0.0, 91.78, 72.37),
            ("binw-snn", 0.0, 91.21, 72.93),
            ("ann-ep", 0.5, 90.87, 75.62),
            ("bnn-lt", 0.5, 91.07, 73.87),
            ("bnn-act-lt", 0.5, 83.96, 62.76),
            ("slt", 0.5, 91.36, 72.01),
            ("binw-slt", 0.5, 91.82, 72.73),
        )
        for ds, v in (("cifar10", c10), ("cifar100", c100))
    },
    # Kim et al.: IMP at 68.3 / 89.9 / 95.7 / 98.1 % sparsity (docs/design.md §4 lists the four
    # VGG-16 values in parallel with ResNet-19's four IMP values).
    **{
        (arch, "cifar10", "snn-imp", sp): v
        for arch, values in (
            ("resnet19", (93.47, 93.49, 93.22, 92.43)),
            ("vgg16", (92.66, 92.54, 92.38, 91.81)),
        )
        for sp, v in zip((0.683, 0.899, 0.957, 0.981), values, strict=True)
    },
}


def _num(value: Any) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _reference(arch: Any, dataset: Any, method: Any, sparsity: float | None) -> float | None:
    sp = sparsity or 0.0
    for (a, d, m, s), v in REFERENCE_TOP1.items():
        if (a, d, m) == (arch, dataset, method) and abs(s - sp) < 0.005:
            return v
    return None


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return v if isinstance(v, str) else canonical_json(v)


def flat_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``config`` as a flat ``{leaf name: value}`` dict (schema-2 configs are nested)."""
    return [{**r, "config": flatten(r.get("config") or {})} for r in rows]


def fill_snn_savings(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill a missing ``energy_x_snn`` from the row's dense SNN baseline, found by its hash.

    The baseline of a cell is ``cell.replace(method="snn")``; each row records that
    cell's hash (``cell.baselines.snn``, schema 2) when it runs. After a merge of shards
    its baseline may have run elsewhere, so the ratio is recomputed here. Rows written
    under schema 1 record no baseline and keep the saving they stored.
    """
    rows = list(rows)
    done = {r.get("config_hash"): r.get("metrics") or {} for r in rows if r.get("status") == "done"}
    out = []
    for r in rows:
        m = r.get("metrics") or {}
        h = ((r.get("cell") or {}).get("baselines") or {}).get("snn")
        base = done.get(h) if h else None
        if base and m.get("energy_x_snn") is None:
            x_snn = saving(stored_energy_pj(base, m.get("energy_model")), m.get("energy_pj"))
            if x_snn is not None:
                r = {**r, "metrics": {**m, "energy_x_snn": x_snn}}
        out.append(r)
    return out


def matrix_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate runs into one entry per cell minus its seed (mean ± sample std over seeds).

    Each entry has ``arch``, ``dataset``, ``method``, ``sparsity`` (target), ``setting``
    (the other config keys that differ between entries, e.g. ``timesteps=4``), ``seeds``,
    ``n_runs``, ``n_done``, ``n_failed``, ``n_running``, ``status``, ``ref_top1`` and, per
    metric key ``m``, ``m`` (mean over done runs or None), ``m_std`` (None under 2 values)
    and ``m_n``; the achieved-sparsity metric is ``achieved_sparsity`` (``sparsity`` is
    the target). Metrics come from ``done`` runs only.
    """
    rows = list(rows)
    collapsed_hashes = {r.get("config_hash") for r in rows
                        if r.get("status", "done") == "done" and (r.get("metrics") or {}).get("collapsed")}
    groups, configs = _group_by_cell(rows)
    varying = _varying_keys(configs)
    table = [_matrix_entry(configs[key], members, varying, collapsed_hashes) for key, members in groups.items()]
    table.sort(key=lambda e: (str(e["arch"]), str(e["dataset"]), method_rank(e["method"]),
                              e["sparsity"] if e["sparsity"] is not None else -1.0, e["setting"]))
    return table


def _group_by_cell(rows: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The runs of each cell minus its seed (flat configs, the x SNN saving filled in), and that
    config, both keyed by the config's canonical JSON."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    configs: dict[str, dict[str, Any]] = {}
    for row in flat_rows(fill_snn_savings(rows)):
        cfg = {k: v for k, v in (row.get("config") or {}).items() if k != "seed"}
        key = canonical_json(cfg)
        groups[key].append(row)
        configs[key] = cfg
    return groups, configs


def _varying_keys(configs: dict[str, dict[str, Any]]) -> list[str]:
    """Keys outside the group keys whose values differ between groups: an entry's "setting".

    Only differences between groups of the same method count: methods legitimately
    differ in what they ignore (an ANN has no T), which is not a "setting".
    """
    extra = sorted({k for c in configs.values() for k in c} - set(_GROUP_KEYS))
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in configs.values():
        by_method[str(c.get("method"))].append(c)
    return [k for k in extra if any(len({canonical_json(c.get(k)) for c in cs}) > 1 for cs in by_method.values())]


def _matrix_entry(cfg: dict[str, Any], members: list[dict[str, Any]], varying: list[str],
                  collapsed_hashes: set) -> dict[str, Any]:
    """One matrix entry: the cell, its runs' statuses, and each metric summarized over its done runs."""
    done = [r for r in members if r.get("status", "done") == "done"]
    entry: dict[str, Any] = {k: cfg.get(k) for k in _GROUP_KEYS}
    entry.update({k: cfg.get(k) for k in ("timesteps", "epochs", "width")})
    entry["sparsity"] = _num(cfg.get("sparsity"))
    entry["setting"] = ", ".join(f"{k}={_fmt_value(cfg[k])}" for k in varying if cfg.get(k) is not None)
    entry["config"] = cfg
    entry["seeds"] = sorted((r.get("config") or {}).get("seed") for r in done
                            if (r.get("config") or {}).get("seed") is not None)
    entry.update(_run_counts(members))
    collapsed = [r for r in done if (r.get("metrics") or {}).get("collapsed")]
    entry["n_collapsed"] = len(collapsed)
    entry["collapse_reason"] = (
        "; ".join(sorted({str((r.get("metrics") or {}).get("collapse_reason")) for r in collapsed}))
        if collapsed else None
    )
    for m in METRIC_KEYS:
        # a collapsed cell is no data point for an energy saving (docs/protocol.md §4); nor is a
        # saving against a collapsed dense SNN
        use = [r for r in done if not (m in _SAVINGS and _saving_void(r, m, collapsed_hashes))]
        s = summarize([v for r in use if (v := _num((r.get("metrics") or {}).get(m))) is not None])
        name = _ENTRY_NAME.get(m, m)
        entry.update({name: s.mean, f"{name}_std": s.std, f"{name}_n": s.n, f"{name}_ci95": s.ci95,
                      f"{name}_lo": s.lo, f"{name}_hi": s.hi})
    entry["saving_note"] = _saving_note(done, collapsed_hashes) if entry["energy_x_snn"] is None or \
        entry["energy_x_ann"] is None else None
    entry["spiking"] = any((r.get("metrics") or {}).get("spiking") for r in done)
    classes = {(r.get("metrics") or {}).get("num_classes") for r in done} - {None}
    entry["num_classes"] = classes.pop() if len(classes) == 1 else None
    entry["ref_top1"] = _reference(entry["arch"], entry["dataset"], entry["method"], entry["sparsity"])
    return entry


def _run_counts(members: list[dict[str, Any]]) -> dict[str, Any]:
    """``n_runs``, ``n_done``, ``n_failed``, ``n_running`` and ``status`` (one word, or '2 done, 1 failed')."""
    counts = Counter(r.get("status", "done") for r in members)
    status = next(iter(counts)) if len(counts) == 1 else ", ".join(
        f"{counts[s]} {s}" for s in ("done", "failed", "running") if counts[s])
    return {"n_runs": len(members), "n_done": counts["done"], "n_failed": counts["failed"],
            "n_running": counts["running"], "status": status}


_SAVINGS = ("energy_x_ann", "energy_x_snn")


def _saving_void(row: dict[str, Any], metric: str, collapsed_hashes: set) -> bool:
    """Whether ``row``'s saving ``metric`` is void: the cell collapsed, or (x SNN) its dense SNN did."""
    if (row.get("metrics") or {}).get("collapsed"):
        return True
    snn = ((row.get("cell") or {}).get("baselines") or {}).get("snn")
    return metric == "energy_x_snn" and snn in collapsed_hashes


def _saving_note(done: Sequence[dict[str, Any]], collapsed_hashes: set) -> str | None:
    """Why an entry shows no saving: 'collapsed' or 'its dense SNN collapsed' (None otherwise)."""
    if any((r.get("metrics") or {}).get("collapsed") for r in done):
        return "collapsed"
    if any(((r.get("cell") or {}).get("baselines") or {}).get("snn") in collapsed_hashes for r in done):
        return "dense SNN collapsed"
    return None


# -- formatting -----------------------------------------------------------------------


def _pm(entry: dict[str, Any], key: str, fmt: str, scale: float = 1.0, suffix: str = "") -> str:
    """'mean ± half-width of the 95 % t-interval' (the mean alone for one seed)."""
    mean, half = entry.get(key), entry.get(f"{key}_ci95")
    if mean is None:
        if key in _SAVINGS and entry.get("saving_note"):
            return f"{DASH} ({entry['saving_note']})"
        return DASH
    text = format(mean * scale, fmt) + suffix
    if half is not None:
        text += " ± " + format(half * scale, fmt)
    return text


def _collapsed(entry: dict[str, Any]) -> str:
    n, total = entry.get("n_collapsed") or 0, entry.get("n_done") or 0
    if not total:
        return DASH
    return "no" if n == 0 else ("yes" if n == total else f"{n}/{total}")


def _target(entry: dict[str, Any]) -> str:
    sp = entry.get("sparsity")
    return DASH if sp is None else f"{sp * 100:g}%"


@dataclass(frozen=True)
class MatrixColumn:
    """One column of the matrix: a header and how to render an entry."""

    header: str
    render: Callable[[dict[str, Any]], str]
    numeric: bool = True


def matrix_columns(
    table: Sequence[dict[str, Any]], *, reference: bool = False
) -> list[MatrixColumn]:
    """The columns shown for ``table`` (``setting`` only when some entry has one)."""
    cols = [
        MatrixColumn("arch", lambda e: str(e.get("arch") or DASH), False),
        MatrixColumn("dataset", lambda e: str(e.get("dataset") or DASH), False),
        MatrixColumn("method", lambda e: str(e.get("method") or DASH), False),
        MatrixColumn("sparsity", _target),
    ]
    if any(e.get("setting") for e in table):
        cols.append(MatrixColumn("setting", lambda e: e.get("setting") or DASH, False))
    cols += [
        MatrixColumn("seeds", lambda e: str(len(e.get("seeds") or ())) if e.get("seeds") else DASH),
        MatrixColumn("top-1 %", lambda e: _pm(e, "top1", ".2f", 100)),
        MatrixColumn("val %", lambda e: _pm(e, "val_top1", ".2f", 100)),
    ]
    if reference:
        cols.append(
            MatrixColumn(
                "paper top-1 %",
                lambda e: DASH if e.get("ref_top1") is None else f"{e['ref_top1']:.2f}",
            )
        )
    cols += [
        MatrixColumn("achieved sparsity %", lambda e: _pm(e, "achieved_sparsity", ".1f", 100)),
        MatrixColumn("energy pJ/img", lambda e: _pm(e, "energy_pj", ".3g")),
        MatrixColumn("saving × ANN", lambda e: _pm(e, "energy_x_ann", ".3g", suffix="×")),
        MatrixColumn("saving × SNN", lambda e: _pm(e, "energy_x_snn", ".3g", suffix="×")),
        MatrixColumn("firing rate", lambda e: _pm(e, "mean_firing_rate", ".3f")),
        MatrixColumn("weight bits", lambda e: _pm(e, "weight_bits", "g")),
        MatrixColumn("time to ticket s", lambda e: _pm(e, "time_to_ticket_s", ".1f")),
        MatrixColumn("collapsed", _collapsed, False),
        MatrixColumn("status", lambda e: str(e.get("status") or DASH), False),
    ]
    return cols


def format_matrix(
    table: Sequence[dict[str, Any]], *, reference: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the matrix, shared by the markdown and the CLI table."""
    cols = matrix_columns(table, reference=reference)
    return [c.header for c in cols], [[c.render(e) for c in cols] for e in table]


def _one_line(text: Any, limit: int | None = None) -> str:
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def curves(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[tuple[int, Any]]]]:
    """Validation learning curves: ``{(arch, dataset): {series: [(epoch, Summary over seeds)]}}``.

    The epoch counts every trained epoch of every round (an IMP cell's curve restarts at each
    rewind); a series is a method, with its target when one method has several."""
    from .stats import summarize

    per: dict[tuple[str, str], dict[str, dict[int, list[float]]]] = {}
    targets: dict[tuple, set] = defaultdict(set)
    done = [r for r in flat_rows(rows) if r.get("status", "done") == "done"]
    for r in done:
        c = r["config"]
        targets[(c.get("arch"), c.get("dataset"), c.get("method"))].add(c.get("sparsity"))
    for r in done:
        c = r["config"]
        hist = [h for h in (r.get("metrics") or {}).get("history") or [] if not h.get("final")]
        if not any(h.get("val_acc") is not None for h in hist):
            continue
        label = str(c.get("method"))
        if len(targets[(c.get("arch"), c.get("dataset"), c.get("method"))]) > 1:
            label += f" {(_num(c.get('sparsity')) or 0) * 100:g}%"
        series = per.setdefault((str(c.get("arch")), str(c.get("dataset"))), {}).setdefault(label, {})
        for i, h in enumerate(hist, 1):
            if h.get("val_acc") is not None:
                series.setdefault(i, []).append(h["val_acc"])
    return {k: {lab: [(ep, summarize(v)) for ep, v in sorted(eps.items())] for lab, eps in sorted(
        ser.items(), key=lambda kv: (method_rank(kv[0].split(" ")[0]), kv[0]))} for k, ser in per.items()}


def convergence(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per curve: the rise of mean validation accuracy over the last 20 % of its epochs of the
    last round; converged when under 1 point (docs/protocol.md §5)."""
    out = []
    for (arch, dataset), series in curves(rows).items():
        for label, pts in series.items():
            if len(pts) < 2:
                continue
            k = max(1, math.ceil(0.2 * len(pts)))
            rise = pts[-1][1].mean - pts[-1 - k][1].mean
            out.append({"arch": arch, "dataset": dataset, "series": label, "epochs": len(pts),
                        "rise_last_20pct": rise, "converged": rise < 0.01})
    return out
