"""The speed scripts in bench/ run end to end and report what their docstrings promise.

Timings are not asserted (they belong to the scripts' output, not to tests); the
structure and the invariants that do not depend on the machine are.
"""

from __future__ import annotations

import json

import pytest

from bench import energy_overhead, speed
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.training.trainer import run_cell


def test_energy_overhead_script_json(capsys):
    energy_overhead.main(["--dataset", "digits", "--data-dir", "", "--width", "0.125", "--images", "48",
                          "--batch", "16", "--repeats", "2", "--threads", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 48 and out["input_size"] == 8
    assert len(out["plain_s"]) == len(out["counted_s"]) == 2 and min(out["plain_s"]) > 0
    assert out["ratio_median"] > 0 and out["energy_pj_per_image"] > 0
    assert 0 <= out["mean_firing_rate"] <= 1


def test_energy_overhead_script_text(capsys):
    energy_overhead.main(["--dataset", "digits", "--data-dir", "", "--width", "0.125", "--images", "16",
                          "--batch", "16", "--repeats", "1", "--threads", "1"])
    text = capsys.readouterr().out
    assert "overhead counted/plain" in text and "16 images" in text


def test_speed_script_json(capsys):
    speed.main(["--archs", "resnet19", "--width", "0.125", "--batch", "4", "--size", "8",
                "--repeats", "1", "--threads", "1", "--json"])
    from spikingjelly_lt.hardware import bf16_supported, cpu_info

    row = json.loads(capsys.readouterr().out)["resnet19"]
    configs = ["fp32-nchw", "fp32-cl"] + (["bf16-cl"] if bf16_supported() else [])
    expected = {f"{m}/{c}" for m in ("ann", "snn", "binw-slt") for c in configs}
    auto = [n for n in row["cases"] if n.endswith("/auto=True")]
    assert set(row["cases"]) == expected | {"snn/fp32-cl/native=False", "snn/fp32-cl/flush_denormal=True",
                                            "snn/fp32-cl/native=False/flush_denormal=True",
                                            "snn/fp32-nchw/flush_denormal=True", "snn/fp32-cl/lif_impl=spikingjelly",
                                            "snn/fp32-cl/lif_impl=snntorch", *auto}
    assert len(auto) == 1 and row["auto_path"]["source"] == "tuned"
    assert all(c["train_s"] > 0 and c["eval_img_s"] > 0 for c in row["cases"].values())
    c = row["cases"]
    best = min((n for n in c if n.startswith("snn/") and "bf16" not in n and "lif_impl" not in n),
               key=lambda n: c[n]["train_s"])
    assert row["best_case"] == best and row["default_vs_best"] == c[auto[0]]["train_s"] / c[best]["train_s"] >= 1
    assert row["sj_stock_vs_ours"] == c["snn/fp32-cl/lif_impl=spikingjelly"]["train_s"] / c[auto[0]]["train_s"]
    assert row["snntorch_vs_ours"] == c["snn/fp32-cl/lif_impl=snntorch"]["train_s"] / c[auto[0]]["train_s"]
    assert 0 < row["gemm_fraction"]["ann"] < 2 and 0 < row["gemm_fraction"]["snn"] < 2
    assert row["p2"] == c["snn/fp32-cl"]["train_s"] / (4 * c["ann/fp32-cl"]["train_s"])
    assert row["p1"] == c["binw-slt/fp32-cl"]["train_s"] / c["snn/fp32-cl"]["train_s"]
    assert row["snn_train_img_s"] == c["snn/fp32-cl"]["train_img_s"]
    if bf16_supported():
        assert row["bf16_speedup"] == pytest.approx(c["snn/bf16-cl"]["train_img_s"] / c["snn/fp32-cl"]["train_img_s"])
    else:
        assert row["bf16_speedup"] is None
    assert row["cpu"] == cpu_info().model and row["flags"] == list(cpu_info().flags)


def test_energy_overhead_script_on_a_trained_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "cell.pt"
    cfg = Cell().replace(method="binw-slt", arch="resnet19", dataset="digits", width=0.125, epochs=1, timesteps=2,
                     limit_train=128, batch_size=64, v_threshold=0.25)
    run_cell(cfg, checkpoint=ckpt)
    energy_overhead.main(["--checkpoint", str(ckpt), "--data-dir", "", "--images", "32", "--batch", "16",
                          "--repeats", "1", "--threads", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    # the cell's recipe comes from the checkpoint, not from the script's defaults
    assert (out["method"], out["width"], out["timesteps"], out["input_size"]) == ("binw-slt", 0.125, 2, 8)
    assert out["checkpoint"] == str(ckpt) and 0 <= out["top1"] <= 1


def test_gpu_check_script_runs_end_to_end_on_the_cpu(tmp_path, capsys):
    """The prepared GPU check, shrunk (--quick) onto the CPU: every step runs and lands in one JSON."""
    from bench import gpu_check

    out = tmp_path / "gpu-check.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(out), "--budget-s", "400"]) == 0
    rep = json.loads(out.read_text())
    assert rep.get("complete") is True, rep.get("error")
    assert rep["env"]["torch"] and rep["threshold"]["used_equal"] and rep["threshold"]["topk_equal"]
    cells = rep["cells"]["fp32"]["cells"]
    assert set(cells) == set(gpu_check.METHODS)
    assert all(c["status"] == "done" and c["loss_finite"] and c["images_per_s"] > 0 for c in cells.values())
    assert all(c["paper_cell_hours_est"] > 0 for c in cells.values())
    assert rep["cells"]["fp32"]["cells"]["binw-slt"]["compute"]["tf32"] is False
    run = rep["ticket"]["run"]
    assert rep["ticket"]["export"]["rc"] == 0 and run["rc"] == 0, run
    exact = run["json"]["checks"]["engine_vs_reference"]
    assert exact["z_layers_differing"] == 0 and exact["prediction_differences"] == 0
