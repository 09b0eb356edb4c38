"""The report: aggregated matrix, markdown page and its PNG plots."""

from __future__ import annotations

import pytest

from spikingjelly_lt.results.plots import PLOT_FILES
from spikingjelly_lt.results.report import build_report
from spikingjelly_lt.results.table import DASH, format_matrix, matrix_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(method, target, seed, status="done", reason=None, **metrics):
    cfg = {
        "arch": "resnet19",
        "dataset": "cifar10",
        "method": method,
        "sparsity": target,
        "seed": seed,
        "timesteps": 4,
        "epochs": 2,
        "width": 0.25,
    }
    return {
        "config_hash": f"{method}-{target}-{seed}",
        "config": cfg,
        "metrics": metrics,
        "status": status,
        "reason": reason,
        "started_at": "2024-01-01T00:00:00+00:00",
        "finished_at": None,
        "env": {},
    }


@pytest.fixture
def rows():
    return [
        row(
            "ann",
            0.0,
            0,
            top1=0.90,
            sparsity=0.0,
            energy_pj=4.6e8,
            energy_x_ann=1.0,
            energy_x_snn=4.8,
            weight_bits=32,
            time_to_ticket_s=100.0,
        ),
        row(
            "ann",
            0.0,
            1,
            top1=0.92,
            sparsity=0.0,
            energy_pj=4.6e8,
            energy_x_ann=1.0,
            energy_x_snn=4.8,
            weight_bits=32,
            time_to_ticket_s=110.0,
        ),
        row(
            "snn",
            0.0,
            0,
            top1=0.8812,
            sparsity=0.0,
            energy_pj=9.6e7,
            energy_x_ann=4.79,
            energy_x_snn=1.0,
            mean_firing_rate=0.1234,
            weight_bits=32,
            time_to_ticket_s=200.0,
        ),
        row(
            "binw-slt",
            0.5,
            0,
            top1=0.8765,
            sparsity=0.4999,
            energy_pj=5.157e7,
            energy_x_ann=8.92,
            energy_x_snn=0.5372,
            mean_firing_rate=0.1111,
            weight_bits=1,
            time_to_ticket_s=150.0,
        ),
        # energy model not there yet: None and missing metrics render as a dash
        row("slt", 0.5, 0, top1=0.85, sparsity=0.5, energy_pj=None, time_to_ticket_s=None),
        row("snn-imp", 0.9, 0, status="failed", reason="CUDA out of memory | at round 2"),
        row("snn-imp", 0.9, 1, status="running"),
    ]


def test_matrix_table_aggregates_seeds(rows):
    table = matrix_table(rows)
    assert [e["method"] for e in table] == ["ann", "snn", "snn-imp", "slt", "binw-slt"]
    ann = table[0]
    assert ann["seeds"] == [0, 1] and ann["n_done"] == 2
    assert ann["top1"] == pytest.approx(0.91)
    assert ann["top1_std"] == pytest.approx(0.0141421356)  # sample std of 0.90, 0.92
    assert ann["sparsity"] == 0.0 and ann["achieved_sparsity"] == 0.0
    assert ann["ref_top1"] == 92.05
    imp = table[2]
    assert imp["top1"] is None and imp["status"] == "1 failed, 1 running"
    assert table[-1]["ref_top1"] == 91.82 and table[-1]["status"] == "done"
    headers, cells = format_matrix(table)
    assert "setting" not in headers  # every cell has the same T / epochs / width
    by_method = {c[headers.index("method")]: dict(zip(headers, c)) for c in cells}
    # ± is the 95 % t half-width: t_{0.975,1} = 12.706, std 1.414 / sqrt(2) -> 12.71 points
    assert by_method["ann"]["top-1 %"] == "91.00 ± 12.71"
    assert ann["top1_ci95"] == pytest.approx(12.7062047 * 0.0141421356 / 2 ** 0.5)
    assert by_method["binw-slt"]["saving × ANN"] == "8.92×"
    assert by_method["slt"]["energy pJ/img"] == DASH
    assert by_method["snn-imp"]["top-1 %"] == DASH


def test_matrix_setting_column_when_configs_differ(rows):
    extra = row("snn", 0.0, 0, top1=0.5)
    extra["config"]["timesteps"] = 2
    headers, cells = format_matrix(matrix_table([*rows, extra]))
    settings = {c[headers.index("setting")] for c in cells}
    assert {"timesteps=2", "timesteps=4"} <= settings


def test_build_report_writes_pngs_and_markdown(rows, tmp_path):
    md_path = build_report(rows, tmp_path / "out")
    assert md_path == tmp_path / "out" / "report.md"
    for name in PLOT_FILES.values():
        data = (tmp_path / "out" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    md = md_path.read_text()
    for name in PLOT_FILES.values():
        assert f"]({name})" in md
    for text in (
        "91.00 ± 12.71",
        "88.12",
        "87.65",
        "50.0",
        "5.16e+07",
        "8.92×",
        "0.537×",
        "0.123",
        "0.111",
        "150.0",
        "4.6e+08",
        "92.05",
        "7 runs: 5 done, 1 failed, 1 running",
    ):
        assert text in md, text
    assert "## Failed runs" in md and "CUDA out of memory \\| at round 2" in md
    assert "## Not finished" in md and "snn-imp-0.9-1" in md


def test_build_report_with_no_energy_or_no_rows(tmp_path):
    bare = [row("slt", 0.5, 0, top1=0.5), row("binw-slt", 0.5, 0, status="failed", reason="x")]
    bare.append(row("slt", 0.5, 0, top1=0.6))
    bare[-1]["config"]["epochs"] = 5
    md = build_report(bare, tmp_path / "a").read_text()
    assert DASH in md and "epochs=5" in md
    for name in PLOT_FILES.values():
        assert (tmp_path / "a" / name).read_bytes().startswith(PNG_SIGNATURE)
    md = build_report([], tmp_path / "b").read_text()
    assert "_No results._" in md and (tmp_path / "b" / PLOT_FILES["energy"]).exists()


def test_snn_saving_filled_from_merged_rows():
    """After a shard merge the dense SNN baseline may have run elsewhere: recompute x SNN
    from the baseline hash each row recorded (``cell.replace(method="snn")``)."""
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.methods import resolve
    from spikingjelly_lt.results.table import fill_snn_savings

    def row(cell, metrics):
        r = resolve(cell)
        return {"status": "done", "config_hash": r.hash, "config": r.key(), "cell": r.describe(), "metrics": metrics}

    base = Cell(method="binw-slt")
    rows = [
        row(base.replace(method="snn"), {"energy_pj": 900.0, "energy_model": "horowitz45",
                                         "energy_by_model": {"horowitz45": 900.0}}),
        row(base, {"energy_pj": 300.0, "energy_model": "horowitz45", "energy_x_snn": None}),
        row(base.replace(width=0.5), {"energy_pj": 300.0, "energy_model": "horowitz45"}),
    ]
    filled = fill_snn_savings(rows)
    assert filled[1]["metrics"]["energy_x_snn"] == 3.0
    assert filled[2]["metrics"].get("energy_x_snn") is None  # no baseline of that width
    assert rows[1]["metrics"]["energy_x_snn"] is None  # input untouched


def test_report_says_which_cpu_and_commits_recorded_the_runs():
    from spikingjelly_lt.results.report import environment_lines

    env = {"cpu": "AMD EPYC", "torch": "2.13.0+cpu", "threads": 2, "device": "cpu"}
    rows = [{"env": {**env, "commit": "abc1234"}}, {"env": {**env, "commit": "def5678"}},
            {"env": {**env, "cpu": "x86_64", "commit": "abc1234"}}]
    lines = environment_lines(rows)
    assert lines[0] == "Recorded on:" and len(lines) == 3
    assert lines[1] == "- 2 run(s): AMD EPYC, cpu, 2 threads, torch 2.13.0+cpu; commits abc1234, def5678"
    assert "x86_64 (CPU model not recorded" in lines[2] and lines[2].startswith("- 1 run(s)")
