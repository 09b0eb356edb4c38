"""The benchmark report: the aggregated matrix table, three PNG plots and a markdown page.

Rows are the dicts :meth:`ResultStore.rows` returns (``config``, ``metrics``, ``status``,
``reason``, ``config_hash``). Missing or None metrics render as "–". Energy ratios
(``energy_x_ann``, ``energy_x_snn``) are savings: the dense ANN's / SNN's energy divided
by this cell's, so the paper's "8.92× saving vs ANN" reads 8.92× here.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikingjelly_lt.cell import canonical_json, flatten
from spikingjelly_lt.energy.savings import saving, stored_energy_pj
from spikingjelly_lt.methods import method_rank
from spikingjelly_lt.results.stats import summarize

__all__ = [
    "METRIC_KEYS",
    "PLOT_FILES",
    "REFERENCE_TOP1",
    "MatrixColumn",
    "build_report",
    "format_matrix",
    "matrix_columns",
    "matrix_table",
    "energy_by_model_table",
    "LAYER_METHODS",
]

log = logging.getLogger("spikingjelly_lt")

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
PLOT_FILES = {
    "accuracy_vs_sparsity": "accuracy_vs_sparsity.png",
    "energy": "energy.png",
    "energy_layers": "energy_layers.png",
    "accuracy_vs_time_to_ticket": "accuracy_vs_time_to_ticket.png",
    "learning_curves": "learning_curves.png",
    "accuracy_vs_energy": "accuracy_vs_energy.png",
    "time_to_ticket_vs_sparsity": "time_to_ticket_vs_sparsity.png",
}
WIDTH_PLOT_FILES = {  # drawn when the rows span two widths or more
    "accuracy_vs_width": "accuracy_vs_width.png",
    "gap_vs_width": "gap_vs_width.png",
}
#: the gaps the width section reports: (A variant's method, B) — every A variant of that method
WIDTH_GAPS = (("binw-slt", "bnn-lt"),)
# Distinct colours (tab10, then five far from all of them): tab20's pairs are near-identical.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#000000", "#00ff7f", "#000080", "#ffd700", "#800000")
SPIKING_MARKER, NONSPIKING_MARKER = "o", "s"  # circles spike; squares do not

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


def _md_escape(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _md_table(
    headers: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool]
) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------


def _panels(table: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    panels: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in table:
        panels.setdefault((str(e.get("arch")), str(e.get("dataset"))), []).append(e)
    return panels


def _figure(n_panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(max(n_panels, 1), 2)
    nrows = math.ceil(max(n_panels, 1) / ncols)
    fig = Figure(figsize=(6.4 * ncols, 4.4 * nrows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(max(n_panels, 1))]
    return fig, axes


def _panel_figure(table: Sequence[dict[str, Any]]):
    """A figure with one panel per (arch, dataset), the method colors, and
    ``(axes, (arch, dataset), entries)`` per panel; an empty table says "no results"."""
    panels, colors = _panels(table), _colors(table)
    fig, axes = _figure(len(panels))
    if not panels:
        _empty(axes[0], "no results")
    return fig, colors, [(ax, key, entries) for ax, (key, entries) in zip(axes, panels.items())]


def _colors(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One distinct colour per method present (in method order)."""
    methods = sorted({str(e.get("method")) for e in table}, key=method_rank)
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _clip_percent(ax) -> None:
    """Keep an accuracy axis inside [0, 100] (a 2-seed t-interval can reach far past both)."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0.0), min(hi, 100.0))


def _finish_accuracy_axes(ax, chance, title: str, xlabel: str, ylabel: str) -> None:
    """The chance line, title, labels, [0, 100] clip, grid and legend every accuracy panel shares."""
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _clip_percent(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncols=2)


def _marker(e: dict[str, Any]) -> str:
    return SPIKING_MARKER if e.get("spiking") else NONSPIKING_MARKER


def _chance(entries: Sequence[dict[str, Any]]) -> float | None:
    classes = {e.get("num_classes") for e in entries if e.get("num_classes")}
    return 100.0 / classes.pop() if len(classes) == 1 else None


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_accuracy_vs_sparsity(table: Sequence[dict[str, Any]], path: Path) -> None:
    fig, colors, panels = _panel_figure(table)
    for ax, (arch, dataset), entries in panels:
        ax.set_title(f"{arch} / {dataset}")
        by_method: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        markers: dict[str, str] = {}
        for e in entries:
            achieved = e.get("achieved_sparsity")
            x = achieved if achieved is not None else e.get("sparsity")
            if e.get("top1") is None or x is None:
                continue
            by_method[_series(e)].append((x * 100, e["top1"] * 100, (e.get("top1_ci95") or 0) * 100))
            markers[_series(e)] = _marker(e)
        if not by_method:
            _empty(ax, "no accuracy data")
            continue
        for label in sorted(by_method, key=lambda lab: (method_rank(lab.split(" ")[0]), lab)):
            pts = sorted(by_method[label])
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                marker=markers[label],
                capsize=3,
                label=label,
                color=colors[label.split(" ")[0]],
            )
        chance = _chance(entries)
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label=f"chance ({chance:g}%)")
        ax.set_xlabel("sparsity (% of weights removed; achieved where measured)")
        ax.set_ylabel("test top-1 % (bars: 95% t-interval over seeds)")
        _clip_percent(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncols=2)
    fig.savefig(path)


def _series(e: dict[str, Any]) -> str:
    """Legend label of a plot series: the method, plus its setting where settings differ."""
    return str(e["method"]) + (f" ({e['setting']})" if e.get("setting") else "")


def _ratio_to_ann(e: dict[str, Any], entries: Sequence[dict[str, Any]]) -> float | None:
    if e.get("energy_x_ann") is not None:
        return e["energy_x_ann"]
    anns = [a for a in entries if a.get("method") == "ann" and a.get("energy_pj")]
    same = [a for a in anns if a.get("setting") == e.get("setting")] or anns
    if same and e.get("energy_pj") is not None:
        return same[0]["energy_pj"] / e["energy_pj"] if e["energy_pj"] else None
    return None


def _plot_energy(table: Sequence[dict[str, Any]], path: Path) -> None:
    fig, colors, panels = _panel_figure(table)
    for ax, (arch, dataset), entries in panels:
        ax.set_title(f"{arch} / {dataset}: energy per image (bar labels: saving vs dense ANN)", fontsize="medium")
        bars = [e for e in entries if (e.get("energy_pj") or 0) > 0]
        if not bars:
            _empty(ax, "no energy data")
            continue
        multi = Counter(str(e["method"]) for e in bars)
        labels = [
            str(e["method"])
            + (f"\n{_target(e)}" if multi[str(e["method"])] > 1 or e.get("sparsity") else "")
            + (f"\n{e['setting']}" if e.get("setting") else "")
            for e in bars
        ]
        heights = [e["energy_pj"] for e in bars]
        xs = range(len(bars))
        ax.bar(xs, heights, color=[colors[str(e["method"])] for e in bars])
        ax.set_yscale("log")
        ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize="small")
        ax.set_ylabel("energy pJ / image (log)")
        for x, h, e in zip(xs, heights, bars):
            r = _ratio_to_ann(e, entries)
            if r is not None:
                ax.annotate(
                    f"{r:.3g}×",
                    (x, h),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize="x-small",
                )
        ax.set_ylim(top=max(heights) * 3)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path)


LAYER_METHODS = ("ann", "snn", "binw-slt")  # the per-layer energy figure's bars


def _layer_rows(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """``{(arch, dataset): {method: row}}``: the first done row with per-layer energy of each
    of ``LAYER_METHODS`` (lowest seed, then the densest target of a pruned method)."""
    out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    done = [r for r in rows if r.get("status", "done") == "done" and (r.get("metrics") or {}).get("energy_layers")]
    done.sort(key=lambda r: (str(r["config"].get("seed")), _num(r["config"].get("sparsity")) or 0.0))
    for r in done:
        c = r["config"]
        if c.get("method") in LAYER_METHODS:
            out.setdefault((str(c.get("arch")), str(c.get("dataset"))), {}).setdefault(c["method"], r)
    return out


def _plot_energy_layers(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Stacked bars by layer (pJ per image, the row's own cost model) for ann, snn, binw-slt."""
    from matplotlib import colormaps

    panels = _layer_rows(rows)
    fig, axes = _figure(len(panels))
    if not panels:
        _empty(axes[0], "no per-layer energy")
    cmap = colormaps["viridis"]
    for ax, ((arch, dataset), by_method) in zip(axes, panels.items()):
        methods = [m for m in LAYER_METHODS if m in by_method]
        n_layers = max(len(by_method[m]["metrics"]["energy_layers"]) for m in methods)
        top = 0.0
        for x, m in enumerate(methods):
            layers = by_method[m]["metrics"]["energy_layers"]
            bottom = 0.0
            for i, layer in enumerate(layers):
                h = layer.get("energy_pj") or 0.0
                ax.bar(x, h, bottom=bottom, color=cmap(i / max(n_layers - 1, 1)), edgecolor="white", linewidth=0.3)
                bottom += h
            ax.annotate(f"{bottom:.3g}", (x, bottom), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize="x-small")
            top = max(top, bottom)
        model = next(iter(by_method.values()))["metrics"].get("energy_model", "?")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylim(top=top * 1.12 if top > 0 else 1.0)
        ax.set_ylabel(f"pJ / image ({model})")
        ax.set_title(f"{arch} / {dataset}: energy by layer (dark: first layer, light: classifier)",
                     fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path)


def energy_by_model_table(table: Sequence[dict[str, Any]], rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Markdown table: per matrix entry, pJ per image under every cost model its runs were
    priced under (``energy_by_model``, mean over done runs), with the savings vs the dense
    ANN and SNN of the same (arch, dataset, setting) under the same model."""
    by_key: dict[str, list[dict[str, float]]] = defaultdict(list)
    models: list[str] = []
    for r in rows:
        em = (r.get("metrics") or {}).get("energy_by_model")
        if r.get("status", "done") != "done" or not em:
            continue
        cfg = {k: v for k, v in (r.get("config") or {}).items() if k != "seed"}
        by_key[canonical_json(cfg)].append(em)
        models += [m for m in em if m not in models]
    mean = {k: {m: statistics.fmean([e[m] for e in v if e.get(m) is not None] or [math.nan]) for m in models}
            for k, v in by_key.items()}

    def energy(e: dict[str, Any]) -> dict[str, float]:
        return mean.get(canonical_json({k: v for k, v in e["config"].items() if k != "seed"}), {})

    def base(e: dict[str, Any], method: str) -> dict[str, float]:
        same = [b for b in table if b.get("method") == method and (b["arch"], b["dataset"]) == (e["arch"], e["dataset"])]
        pick = [b for b in same if b.get("setting") == e.get("setting")] or same
        return energy(pick[0]) if pick else {}

    headers = ["method", "target", *[f"{m} pJ (×ANN / ×SNN)" for m in models]]
    cells = []
    for e in table:
        mine = energy(e)
        if not mine:
            continue
        ann, snn = base(e, "ann"), base(e, "snn")
        row = [str(e["method"]) + (f" ({e['setting']})" if e.get("setting") else ""), _target(e)]
        for m in models:
            v = mine.get(m)
            if v is None or math.isnan(v):
                row.append(DASH)
                continue
            xa = f"{ann[m] / v:.3g}" if ann.get(m) and v else DASH
            xs = f"{snn[m] / v:.3g}" if snn.get(m) and v and e.get("method") not in ("ann",) else DASH
            row.append(f"{v:.3g} ({xa} / {xs})")
        cells.append(row)
    return headers, cells


def _plot_accuracy_vs_time(table: Sequence[dict[str, Any]], path: Path) -> None:
    fig, colors, panels = _panel_figure(table)
    for ax, (arch, dataset), entries in panels:
        ax.set_title(f"{arch} / {dataset}")
        pts = [
            e for e in entries if e.get("top1") is not None and (e.get("time_to_ticket_s") or 0) > 0
        ]
        if not pts:
            _empty(ax, "no time-to-ticket data")
            continue
        seen: set[str] = set()
        for e in sorted(pts, key=lambda e: method_rank(e["method"])):
            method = str(e["method"])
            ax.errorbar(
                e["time_to_ticket_s"],
                e["top1"] * 100,
                xerr=e.get("time_to_ticket_s_std") or 0,
                yerr=(e.get("top1_std") or 0) * 100,
                marker="o",
                linestyle="none",
                capsize=3,
                color=colors[method],
                label=None if method in seen else method,
            )
            seen.add(method)
            ax.annotate(
                _target(e),
                (e["time_to_ticket_s"], e["top1"] * 100),
                xytext=(4, 2),
                textcoords="offset points",
                fontsize="x-small",
            )
        times = [e["time_to_ticket_s"] for e in pts]
        if max(times) / min(times) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("time to ticket (s)")
        ax.set_ylabel("top-1 %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncols=2)
    fig.savefig(path)


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


def _plot_learning_curves(rows: Sequence[dict[str, Any]], table: Sequence[dict[str, Any]], path: Path) -> None:
    data, colors = curves(rows), _colors(table)
    fig, axes = _figure(len(data))
    if not data:
        _empty(axes[0], "no validation curves (recipe.val_fraction = 0, or runs before the split)")
    spiking = {str(e.get("method")): e.get("spiking") for e in table}
    styles = ("-", "--", ":", "-.")
    for ax, ((arch, dataset), series) in zip(axes, data.items()):
        seen: Counter = Counter()
        for label, pts in series.items():
            method = label.split(" ")[0]
            xs = [ep for ep, _ in pts]
            ys = [sm.mean * 100 for _, sm in pts]
            style = styles[seen[method] % len(styles)]
            seen[method] += 1
            color = colors.get(method, "black")
            ax.plot(xs, ys, style, marker=SPIKING_MARKER if spiking.get(method) else NONSPIKING_MARKER,
                    markersize=3, color=color, label=label)
            lo = [(sm.lo if sm.lo is not None else sm.mean) * 100 for _, sm in pts]
            hi = [(sm.hi if sm.hi is not None else sm.mean) * 100 for _, sm in pts]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
        chance = _chance([e for e in table if (str(e.get("arch")), str(e.get("dataset"))) == (arch, dataset)])
        _finish_accuracy_axes(ax, chance, f"{arch} / {dataset}: validation accuracy (mean over seeds, band: "
                              "95% t-interval)", "epoch (all rounds of an IMP cell in sequence)",
                              "validation top-1 %")
    fig.savefig(path)


def front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of ``(energy, accuracy)`` (lower energy, higher
    accuracy), by ascending energy: no other point is at most as costly and at least as accurate."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    keep, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            keep.append(i)
            best = points[i][1]
    return keep


def _plot_accuracy_vs_energy(table: Sequence[dict[str, Any]], path: Path) -> None:
    fig, colors, panels = _panel_figure(table)
    for ax, (arch, dataset), entries in panels:
        pts = [e for e in entries if e.get("top1") is not None and (e.get("energy_pj") or 0) > 0]
        if not pts:
            _empty(ax, "no accuracy + energy data")
            continue
        seen: set[str] = set()
        for e in pts:
            method = str(e["method"])
            collapsed = (e.get("n_collapsed") or 0) > 0
            ax.errorbar(e["energy_pj"], e["top1"] * 100, yerr=(e.get("top1_ci95") or 0) * 100,
                        marker=_marker(e), linestyle="none", capsize=2, color=colors[method],
                        markerfacecolor="none" if collapsed else colors[method],
                        label=None if method in seen else method)
            seen.add(method)
            ax.annotate(_target(e) + (" (collapsed)" if collapsed else ""), (e["energy_pj"], e["top1"] * 100),
                        xytext=(4, 2), textcoords="offset points", fontsize="x-small")
        ok = [e for e in pts if not e.get("n_collapsed")]
        idx = front([(e["energy_pj"], e["top1"]) for e in ok])
        if idx:
            fx = [ok[i]["energy_pj"] for i in idx]
            fy = [ok[i]["top1"] * 100 for i in idx]
            ax.step(fx, fy, where="post", color="gray", linewidth=1, alpha=0.7, label="non-dominated front")
        ax.set_xscale("log")
        _finish_accuracy_axes(ax, _chance(entries), f"{arch} / {dataset}: accuracy vs energy (o spiking, "
                              "\u25a1 not; hollow: collapsed)", "energy pJ / image (log)", "test top-1 %")
    fig.savefig(path)


def _plot_time_vs_sparsity(table: Sequence[dict[str, Any]], path: Path) -> None:
    """Time to ticket vs target sparsity per method (the search-cost headline), 95 % bars."""
    fig, colors, panels = _panel_figure(table)
    for ax, (arch, dataset), entries in panels:
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in entries:
            if e.get("sparsity") is not None and (e.get("time_to_ticket_s") or 0) > 0 and e["sparsity"] > 0:
                by[_series(e)].append(e)
        if not by:
            _empty(ax, "no sparse time-to-ticket data")
            continue
        for label, es in sorted(by.items(), key=lambda kv: (method_rank(kv[0].split(" ")[0]), kv[0])):
            es.sort(key=lambda e: e["sparsity"])
            ax.errorbar([e["sparsity"] * 100 for e in es], [e["time_to_ticket_s"] for e in es],
                        yerr=[e.get("time_to_ticket_s_ci95") or 0 for e in es], marker=_marker(es[0]), capsize=3,
                        color=colors[label.split(" ")[0]], label=label)
        ax.set_yscale("log")
        ax.set_title(f"{arch} / {dataset}: time to ticket (every round counted)", fontsize="medium")
        ax.set_xlabel("target sparsity %")
        ax.set_ylabel("time to ticket s (log)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path)


def _width_gap_series(rows: Sequence[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], dict | None]]:
    """Every (gaps per width, fitted trend) of :data:`WIDTH_GAPS`, one per A variant that ran."""
    from .width import gap_trend, variant, width_gaps

    out = []
    for a_method, b in WIDTH_GAPS:
        variants = sorted({variant(r["config"]) for r in flat_rows(rows)
                           if (r.get("config") or {}).get("method") == a_method})
        for a in variants:
            gaps = [g for g in width_gaps(rows, a, b) if g["n"] > 0]
            if gaps:
                out.append((gaps, gap_trend(gaps)))
    return out


def _plot_accuracy_vs_width(rows: Sequence[dict[str, Any]], chance: float | None, path: Path) -> None:
    """Test top-1 against width (log2 axis): mean and 95 % band per method variant, chance line."""
    from .width import width_series

    series = width_series(rows)
    fig, (ax,) = _figure(1)
    for i, (name, points) in enumerate(sorted(series.items(), key=lambda kv: method_rank(kv[0].split(" ")[0]))):
        color = PALETTE[i % len(PALETTE)]
        xs = [p["width"] for p in points]
        ax.plot(xs, [p["mean"] * 100 for p in points], marker="o", color=color, label=name)
        band = [(p["width"], p["lo"] * 100, p["hi"] * 100) for p in points if p["lo"] is not None]
        if band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color,
                            alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    _finish_accuracy_axes(ax, chance, "test top-1 against width (mean, 95 % t-band over seeds)", "width (log2)",
                          "test top-1 %")
    fig.savefig(path)


def _plot_gap_vs_width(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Paired A - B against width with its 95 % interval, and the fitted line in log2 width."""
    fig, (ax,) = _figure(1)
    gap_series = _width_gap_series(rows)
    for i, (gaps, trend) in enumerate(gap_series):
        color = PALETTE[i % len(PALETTE)]
        xs = [g["width"] for g in gaps]
        ys = [g["mean"] * 100 for g in gaps]
        err = [[(g["mean"] - g["lo"]) * 100 if g["lo"] is not None else 0 for g in gaps],
               [(g["hi"] - g["mean"]) * 100 if g["hi"] is not None else 0 for g in gaps]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=color, linestyle="none",
                    label=f"{gaps[0]['a']} - {gaps[0]['b']}")
        if trend:
            lo, hi = math.log2(min(xs)), math.log2(trend["max_width"] * 8)
            grid = [lo + (hi - lo) * k / 50 for k in range(51)]
            ax.plot([2 ** g for g in grid], [(trend["gap_at_1"] + trend["slope"] * g) * 100 for g in grid],
                    color=color, linestyle="--", linewidth=1,
                    label=f"fit: {trend['slope'] * 100:+.2f} points per doubling")
    if not gap_series:
        _empty(ax, "no paired widths")
    ax.axhline(0, color="gray", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_title("paired gap against width (95 % t-interval; dashed: fit, extrapolated to 8x)", fontsize="medium")
    ax.set_xlabel("width (log2)")
    ax.set_ylabel("difference in test top-1 (points)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.savefig(path)


def width_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The width section: the gap per width with its interval, and the fitted trend in words."""
    gap_series = _width_gap_series(rows)
    if not gap_series:
        return ["_No paired widths._"]
    headers = ["A - B", "width", "n", "A - B (points) [95% CI]"]
    cells = []
    lines: list[str] = []
    for gaps, trend in gap_series:
        for g in gaps:
            ci = "" if g["lo"] is None else f" [{g['lo'] * 100:+.2f}, {g['hi'] * 100:+.2f}]"
            cells.append([f"{g['a']} - {g['b']}", f"{g['width']:g}", str(g["n"]), f"{g['mean'] * 100:+.2f}{ci}"])
        if trend:
            lines.append(
                f"- {gaps[0]['a']} - {gaps[0]['b']}: {trend['slope'] * 100:+.2f} points per doubling of width "
                f"[{trend['slope_lo'] * 100:+.2f}, {trend['slope_hi'] * 100:+.2f}]; fitted gap at width 1 "
                f"{trend['gap_at_1'] * 100:+.2f} [{trend['gap_at_1_lo'] * 100:+.2f}, {trend['gap_at_1_hi'] * 100:+.2f}] "
                f"(an extrapolation); {trend['verdict']}. OLS of {trend['n']} per-seed differences on log2 width.")
    return [_md_table(headers, cells, [False, True, True, True]), "", *lines]


def environment_lines(rows: Sequence[dict]) -> list[str]:
    """'Recorded on' lines: runs per (CPU, torch, threads, device), with their commits.

    Speed and time-to-ticket figures hold for one CPU family only; rows written before the
    CPU model was recorded say the bare architecture (``x86_64``).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        env = r.get("env") or {}
        key = (env.get("cpu", "?"), env.get("torch", "?"), env.get("threads", "?"), env.get("device", "?"))
        groups.setdefault(key, []).append(env)
    lines = ["Recorded on:"]
    for (cpu, torch_v, threads, device), envs in groups.items():
        if cpu in ("x86_64", "aarch64", "", "?"):
            cpu = f"{cpu or '?'} (CPU model not recorded by that version)"
        commits = sorted({str(e.get("commit", "?")) for e in envs})
        lines.append(f"- {len(envs)} run(s): {cpu}, {device}, {threads} threads, torch {torch_v}; "
                     f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}")
    return lines


def claims_markdown(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The claims table: claim, pair, where, n, our difference [95 % CI], verdict."""
    from .stats import claims_table, format_difference

    headers = ["claim", "A - B", "metric", "at", "n", "our difference [95% CI]", "verdict"]
    cells = []
    claims = claims_table(rows)
    several_widths = len({c.get("width") for c in claims if c.get("width") is not None}) > 1
    for c in claims:
        at = DASH if c.get("arch") is None else (
            f"{c['arch']}/{c['dataset']}" + (f" {c['sparsity'] * 100:g}%" if c.get("sparsity") is not None else "")
            + (f" w{c['width']:g}" if several_widths and c.get("width") is not None else ""))
        unit = "points" if c["metric"] == "top1" else "pJ/img"
        cells.append([c["claim"], f"{c['a']} - {c['b']}", f"{c['metric']} ({unit})", at, str(c["n"]),
                      format_difference(c), c["verdict"]])
    return headers, cells


def paired_markdown(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    from .stats import format_difference, paired_table

    headers = ["A - B", "metric", "at", "n", "A mean", "B mean", "difference [95% CI]"]
    cells = []
    for e in paired_table(rows):
        scale = 100.0 if e["metric"] == "top1" else 1.0
        at = f"{e['arch']}/{e['dataset']}" + (f" {e['sparsity'] * 100:g}%" if e.get("sparsity") is not None else "")
        cells.append([f"{e['a']} - {e['b']}", e["metric"], at, str(e["n"]),
                      DASH if e["a_mean"] is None else f"{e['a_mean'] * scale:.4g}",
                      DASH if e["b_mean"] is None else f"{e['b_mean'] * scale:.4g}", format_difference(e)])
    return headers, cells


STAT_METRICS = (("top1", "test top-1 %", 100.0), ("val_top1", "val top-1 %", 100.0),
                ("energy_pj", "energy pJ/img", 1.0), ("energy_x_snn", "saving × SNN", 1.0),
                ("time_to_ticket_s", "time to ticket s", 1.0))


def stats_markdown(table: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Mean, sample std, n and the 95 % t-interval of each headline metric, per matrix entry."""
    headers = ["method", "target", "metric", "n", "mean", "std", "95% CI"]
    cells = []
    for e in table:
        for key, label, scale in STAT_METRICS:
            name = _ENTRY_NAME.get(key, key)
            if e.get(name) is None:
                if key == "energy_x_snn" and e.get("saving_note"):
                    cells.append([str(e["method"]), _target(e), label, "0", f"{DASH} ({e['saving_note']})", DASH, DASH])
                continue

            def f(v):
                return DASH if v is None else f"{v * scale:.4g}"

            ci = DASH if e.get(f"{name}_lo") is None else f"[{f(e[f'{name}_lo'])}, {f(e[f'{name}_hi'])}]"
            cells.append([str(e["method"]), _target(e), label, str(e.get(f"{name}_n")), f(e[name]),
                          f(e.get(f"{name}_std")), ci])
    return headers, cells


# -- report ---------------------------------------------------------------------------


def _run_label(row: dict[str, Any]) -> list[str]:
    cfg = row.get("config") or {}
    sp = _num(cfg.get("sparsity"))
    return [
        str(row.get("config_hash") or DASH),
        str(cfg.get("arch", DASH)),
        str(cfg.get("dataset", DASH)),
        str(cfg.get("method", DASH)),
        DASH if sp is None else f"{sp * 100:g}%",
        str(cfg.get("seed", DASH)),
    ]


def build_report(rows: Iterable[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write ``report.md`` and its PNG plots (two more for a width grid) into ``out_dir``; return its path."""
    rows = flat_rows(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = matrix_table(rows)
    width_grid = len({(r.get("config") or {}).get("width") for r in rows} - {None}) > 1
    _write_plots(rows, table, out, width_grid)
    parts = [
        *_matrix_section(rows, table),
        *_claims_sections(rows, table),
        *(_width_section(rows) if width_grid else []),
        *_collapsed_section(table),
        *_curves_section(rows),
        *_plots_section(rows, table),
        *_unfinished_sections(rows),
    ]
    path = out / "report.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    log.info("wrote report %s (%d matrix rows, %d runs)", path, len(table), len(rows))
    return path


def _write_plots(rows: list[dict[str, Any]], table: list[dict[str, Any]], out: Path, width_grid: bool) -> None:
    """The report's PNG plots (:data:`PLOT_FILES`; :data:`WIDTH_PLOT_FILES` too for a width grid)."""
    _plot_accuracy_vs_sparsity(table, out / PLOT_FILES["accuracy_vs_sparsity"])
    _plot_energy(table, out / PLOT_FILES["energy"])
    _plot_energy_layers(rows, out / PLOT_FILES["energy_layers"])
    _plot_accuracy_vs_time(table, out / PLOT_FILES["accuracy_vs_time_to_ticket"])
    _plot_learning_curves(rows, table, out / PLOT_FILES["learning_curves"])
    _plot_accuracy_vs_energy(table, out / PLOT_FILES["accuracy_vs_energy"])
    _plot_time_vs_sparsity(table, out / PLOT_FILES["time_to_ticket_vs_sparsity"])
    if width_grid:
        _plot_accuracy_vs_width(rows, _chance(table), out / WIDTH_PLOT_FILES["accuracy_vs_width"])
        _plot_gap_vs_width(rows, out / WIDTH_PLOT_FILES["gap_vs_width"])


def _matrix_section(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """The title, the runs' statuses, the environment and the matrix with what its numbers mean."""
    counts = Counter(r.get("status", "done") for r in rows)
    cols = matrix_columns(table, reference=True)
    headers, cells = format_matrix(table, reference=True)
    return [
        "# spikingjelly-lt benchmark report",
        "",
        (
            f"{len(rows)} runs: {counts['done']} done, {counts['failed']} failed, "
            f"{counts['running']} running or interrupted."
        ),
        "",
        *environment_lines(rows),
        "",
        "## Matrix",
        "",
        _md_table(headers, cells, [c.numeric for c in cols]) if table else "_No results._",
        "",
        (
            "Mean ± half-width of the 95 % Student-t interval over seeds (the mean alone for one "
            "seed; std and n in the statistics table), from done runs only; top-1 is the test "
            "accuracy of the last epoch, measured once after training; val: the validation split "
            "of the training images (design 5). collapsed: validation accuracy within 2 points "
            "of chance or a spiking layer under 1 % firing; such a cell has no energy saving "
            "('–', with the reason). Sparsity is the "
            "fraction of weights removed (target; achieved is counted from the weights that "
            "run). saving × ANN / × SNN: the dense ANN's / SNN's energy divided by this "
            "method's (the paper claims 8.92× and 1.86× for BinW-SLT). Paper top-1: "
            "2311.12060 Table 1 (ResNet-19, T=4) and Kim et al. ECCV'22 (IMP, T=5, 300 epochs)."
        ),
        "",
    ]


def _claims_sections(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """The paper's claims with their paired verdicts, the per-entry statistics and every paired difference."""
    claims_h, claims_c = claims_markdown(rows)
    paired_h, paired_c = paired_markdown(rows)
    stats_h, stats_c = stats_markdown(table)
    return [
        "## Claims",
        "",
        ("Paired over the same seeds (same data order and initial draws): the difference A - B "
         "per seed, its mean and 95 % t-interval. supported: the interval excludes 0 in the "
         "claimed direction; refuted: it excludes 0 the other way; else undecided at this n "
         "(design 5). Accuracy in points of test top-1, energy in pJ per image; a collapsed "
         "cell is no energy data point."),
        "",
        _md_table(claims_h, claims_c, [False, False, False, False, True, True, False]),
        "",
        "## Statistics",
        "",
        (_md_table(stats_h, stats_c, [False, False, False, True, True, True, True])
         if stats_c else "_No results._"),
        "",
        "## Paired differences",
        "",
        (_md_table(paired_h, paired_c, [False, False, False, True, True, True, True])
         if paired_c else "_No two methods share a seed._"),
        "",
    ]


def _width_section(rows: list[dict[str, Any]]) -> list[str]:
    """Accuracy and the paired gap against width (a width grid only)."""
    return ["## Width", "",
            ("Test top-1 against width, and the paired gap of each BinW-SLT variant to MPT-1/32 "
             "(bnn-lt) at the same seed and width with its 95 % t-interval; the trend is an OLS line "
             "of the per-seed differences on log2(width), its zero crossing with Fieller's 95 % "
             "interval, reported only within 8x the largest width measured."), "",
            *width_markdown(rows), "",
            f"![Accuracy vs width]({WIDTH_PLOT_FILES['accuracy_vs_width']})", "",
            f"![Gap vs width]({WIDTH_PLOT_FILES['gap_vs_width']})", ""]


def _collapsed_section(table: list[dict[str, Any]]) -> list[str]:
    collapsed = [e for e in table if e.get("n_collapsed")]
    return [
        "## Collapsed cells",
        "",
        ("\n".join(f"- {e['method']} {_target(e)}: {e['n_collapsed']}/{e['n_done']} run(s); "
                   f"{e['collapse_reason']}" for e in collapsed) if collapsed else "None."),
        "",
    ]


def _curves_section(rows: list[dict[str, Any]]) -> list[str]:
    """The learning curves, and which of them still rise."""
    conv = convergence(rows)
    rising = [f"{c['series']} ({c['arch']}/{c['dataset']}: +{c['rise_last_20pct'] * 100:.1f} points)"
              for c in conv if not c["converged"]]
    return [
        "## Curves",
        "",
        f"![Validation accuracy vs epoch]({PLOT_FILES['learning_curves']})",
        "",
        (("Still rising (validation accuracy gained 1 point or more over the last 20 % of "
          "epochs): " + ", ".join(rising) + ".") if rising else
         ("Every curve has flattened (under 1 point over the last 20 % of epochs)." if conv else
          "No validation curves.")),
        "",
    ]


def _plots_section(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """The plots, and the energy of every entry under every cost model."""
    energy_headers = energy_by_model_table(table, rows)
    return [
        "## Plots",
        "",
        f"![Accuracy vs energy, log energy, non-dominated front]({PLOT_FILES['accuracy_vs_energy']})",
        "",
        f"![Accuracy vs sparsity]({PLOT_FILES['accuracy_vs_sparsity']})",
        "",
        f"![Time to ticket vs sparsity]({PLOT_FILES['time_to_ticket_vs_sparsity']})",
        "",
        f"![Energy per image, log scale, ratio to the ANN on each bar]({PLOT_FILES['energy']})",
        "",
        f"![Energy per image by layer, stacked, for ann, snn and binw-slt]({PLOT_FILES['energy_layers']})",
        "",
        "## Energy under every cost model",
        "",
        (_md_table(*energy_headers, [False, False] + [True] * (len(energy_headers[0]) - 2))
         if energy_headers[1] else "_No energy results._"),
        "",
        ("pJ per image under each registered cost model (docs/energy.md: rules, and what each "
         "model charges); in brackets the dense ANN's and SNN's energy divided by this entry's "
         "under the same model (paper, BinW-SLT: 8.92× ANN, 1.86× SNN)."),
        "",
        f"![Accuracy vs time to ticket]({PLOT_FILES['accuracy_vs_time_to_ticket']})",
        "",
    ]


def _unfinished_sections(rows: list[dict[str, Any]]) -> list[str]:
    """The failed runs with their reasons, and the runs still running or interrupted (none: nothing)."""
    run_headers = ["hash", "arch", "dataset", "method", "sparsity", "seed"]
    parts: list[str] = []
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        parts += ["## Failed runs", ""]
        parts.append(
            _md_table(
                [*run_headers, "reason"],
                [[*_run_label(r), _one_line(r.get("reason") or DASH, 500)] for r in failed],
                [False] * (len(run_headers) + 1),
            )
        )
        parts.append("")
    running = [r for r in rows if r.get("status") == "running"]
    if running:
        parts += [
            "## Not finished",
            "",
            "Still running, or interrupted (a resume reruns these).",
            "",
            _md_table(
                [*run_headers, "started"],
                [[*_run_label(r), str(r.get("started_at") or DASH)] for r in running],
                [False] * (len(run_headers) + 1),
            ),
            "",
        ]
    return parts
