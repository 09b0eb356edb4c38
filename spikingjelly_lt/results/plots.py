"""The report's matplotlib figures (:data:`PLOT_FILES`, and :data:`WIDTH_PLOT_FILES` for a width
grid), drawn from the aggregated matrix (:mod:`.table`) and the rows."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spikingjelly_lt.methods import method_rank
from spikingjelly_lt.results.table import _num, _target, curves, flat_rows

__all__ = ["PLOT_FILES", "WIDTH_PLOT_FILES", "WIDTH_GAPS", "PALETTE", "LAYER_METHODS", "front", "write_plots"]

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


def write_plots(rows: list[dict[str, Any]], table: list[dict[str, Any]], out: Path, width_grid: bool) -> None:
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
