"""The benchmark report: ``report.md`` (the matrix, claims, paired differences, statistics,
width, learning curves and the plots' captions) beside the PNG figures of :mod:`.plots`, from the
aggregated matrix of :mod:`.table`."""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spikingjelly_lt.cell import canonical_json
from spikingjelly_lt.results.plots import PLOT_FILES, WIDTH_PLOT_FILES, _width_gap_series, write_plots
from spikingjelly_lt.results.table import (DASH, _ENTRY_NAME, _num, _one_line, _target, convergence, flat_rows,
                                           format_matrix, matrix_columns, matrix_table)

__all__ = ["build_report", "energy_by_model_table", "claims_markdown", "paired_markdown", "stats_markdown",
           "width_markdown", "environment_lines"]

log = logging.getLogger("spikingjelly_lt")


def _md_escape(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _md_table(
    headers: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool]
) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


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
    write_plots(rows, table, out, width_grid)
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
            "of the training images (docs/protocol.md). collapsed: validation accuracy within 2 points "
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
         "(docs/protocol.md). Accuracy in points of test top-1, energy in pJ per image; a collapsed "
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
