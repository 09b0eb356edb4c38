"""The width study's analysis (issue 25): gaps per width, the fitted trend and its crossing, the report."""

from __future__ import annotations

import math

import pytest

from spikingjelly_lt.results import width as W
from spikingjelly_lt.results.report import build_report, claims_markdown

PNG = b"\x89PNG\r\n\x1a\n"


def row(method, width, seed, top1, **extra):
    """A stored row as the runner writes it: the resolved cell's key, description and hash."""
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.methods import resolve

    keys = {"iterand_period": "recipe.iterand_period", "iterand_rate": "recipe.iterand_rate"}
    r = resolve(Cell().with_values({"method": method, "sparsity": 0.5, "seed": seed, "model.arch": "vgg16",
                                    "model.width": width, "data.dataset": "cifar10", "recipe.epochs": 2,
                                    **{keys[k]: v for k, v in extra.items()}}))
    return {"config_hash": r.hash, "config": r.key(), "cell": r.describe(),
            "metrics": {"top1": top1, "val_top1": top1, "num_classes": 10}, "status": "done", "env": {}}


# gap = -0.20 + 0.05 * log2(width / 0.0625) + per-seed noise that sums to 0 at each width
NOISE = (-0.01, 0.0, 0.01)


def study_rows():
    out = []
    for w in (0.0625, 0.125, 0.25):
        for s in (0, 1, 2):
            b = 0.5 + 0.02 * s
            gap = -0.20 + 0.05 * math.log2(w / 0.0625) + NOISE[s]
            out += [row("bnn-lt", w, s, b), row("binw-slt", w, s, b + gap), row("snn", w, s, 0.4),
                    row("binw-slt", w, s, b + gap + 0.03, iterand_period=100, iterand_rate=0.5)]
    return out


def test_gaps_pair_by_seed_and_width_and_strip_the_search_options():
    rows = study_rows()
    gaps = W.width_gaps(rows, "binw-slt", "bnn-lt")
    assert [g["width"] for g in gaps] == [0.0625, 0.125, 0.25]
    for g, expect in zip(gaps, (-0.20, -0.15, -0.10)):
        assert g["n"] == 3 and g["mean"] == pytest.approx(expect, abs=1e-12)
        assert g["diffs"] == pytest.approx([expect + e for e in NOISE], abs=1e-12)
        # t-interval: mean +- t(0.975, 2) * std / sqrt(3), std of (-0.01, 0, 0.01) = 0.01
        assert g["hi"] - g["mean"] == pytest.approx(4.302652729911275 * 0.01 / math.sqrt(3), rel=1e-6)
    variant = W.variant({"method": "binw-slt", "iterand_period": 100, "iterand_rate": 0.5})
    assert variant == "binw-slt +iterand_period=100,iterand_rate=0.5"
    assert [g["mean"] for g in W.width_gaps(rows, variant, "bnn-lt")] == pytest.approx([-0.17, -0.12, -0.07])


def test_trend_recovers_the_line_and_its_crossing():
    gaps = W.width_gaps(study_rows(), "binw-slt", "bnn-lt")
    t = W.gap_trend(gaps)
    assert t["slope"] == pytest.approx(0.05, abs=1e-12)  # per doubling
    # gap(w) = -0.20 + 0.05 (log2 w + 4) -> at w = 1: 0.0; crossing exactly at width 1
    assert t["gap_at_1"] == pytest.approx(0.0, abs=1e-12)
    assert t["crossing"] == pytest.approx(1.0, rel=1e-9)
    assert t["crossing_lo"] < 1.0 < t["crossing_hi"]
    assert "reaches 0 at width 1" in t["verdict"]


def test_fieller_interval_is_where_the_line_band_covers_zero():
    gaps = W.width_gaps(study_rows(), "binw-slt", "bnn-lt")
    t = W.gap_trend(gaps)
    xs = [math.log2(g["width"]) for g in gaps for _ in g["diffs"]]
    n, mx = len(xs), sum(xs) / len(xs)
    sxx = sum((x - mx) ** 2 for x in xs)
    s2 = sum(e * e for e in NOISE) * 3 / (n - 2)  # residuals are exactly the noise
    tq = 2.364624251592785  # t(0.975, 7)
    for w in (t["crossing_lo"], t["crossing_hi"]):
        x = math.log2(w)
        fit = t["gap_at_1"] + t["slope"] * x
        half = tq * math.sqrt(s2 * (1 / n + (x - mx) ** 2 / sxx))
        assert abs(fit) == pytest.approx(half, rel=1e-6)  # the interval's ends: |fit| = t * se(fit)


def test_no_trend_and_far_crossings_are_said_honestly():
    flat = [{"width": w, "diffs": [-0.1, -0.12, -0.08] if w != 0.125 else [-0.08, -0.1, -0.12]}
            for w in (0.0625, 0.125, 0.25)]
    assert W.gap_trend(flat)["verdict"].startswith("no trend")
    slow = [{"width": w, "diffs": [-0.5 + 0.01 * math.log2(w / 0.0625) + e for e in NOISE]}
            for w in (0.0625, 0.125, 0.25)]
    assert W.gap_trend(slow)["verdict"].startswith("no crossing within 8x the largest width measured")
    assert W.gap_trend(flat[:1]) is None


def test_report_has_the_width_section_plots_and_a_claims_row_per_width(tmp_path):
    rows = study_rows()
    md = build_report(rows, tmp_path).read_text()
    assert "## Width" in md and "points per doubling" in md
    for name in ("accuracy_vs_width.png", "gap_vs_width.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    _, cells = claims_markdown(rows)
    at = [c[3] for c in cells if c[1] == "binw-slt - bnn-lt" and c[2].startswith("top1")]
    assert sorted(at) == ["vgg16/cifar10 50% w0.0625", "vgg16/cifar10 50% w0.125", "vgg16/cifar10 50% w0.25"]
