"""The report's energy parts: per-layer stacked bars (ann, snn, binw-slt) and a table
with every registered cost model's energy and savings."""

from __future__ import annotations

from spikingjelly_lt.results.plots import PLOT_FILES
from spikingjelly_lt.results.report import build_report, energy_by_model_table
from spikingjelly_lt.results.table import matrix_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(method, target, seed, by_model, layers):
    cfg = {"arch": "resnet19", "dataset": "cifar10", "method": method, "sparsity": target, "seed": seed,
           "timesteps": 4, "epochs": 2, "width": 0.25}
    metrics = {"top1": 0.5, "energy_model": "horowitz45", "energy_pj": by_model["horowitz45"],
               "energy_by_model": by_model,
               "energy_layers": [{"name": f"l{i}", "op_kind": "AC", "macs": 0.0, "acs": 1.0,
                                  "weight_density": 1.0, "firing_rate": 0.1, "energy_pj": pj}
                                 for i, pj in enumerate(layers)]}
    return {"config_hash": f"{method}-{seed}", "config": cfg, "metrics": metrics, "status": "done",
            "reason": None, "started_at": None, "finished_at": None, "env": {}}


ROWS = [
    row("ann", 0.0, 0, {"horowitz45": 800.0, "horowitz45-neuro": 900.0}, [500.0, 300.0]),
    row("snn", 0.0, 0, {"horowitz45": 200.0, "horowitz45-neuro": 400.0}, [150.0, 50.0]),
    row("binw-slt", 0.5, 0, {"horowitz45": 100.0, "horowitz45-neuro": 300.0}, [60.0, 40.0]),
    row("binw-slt", 0.5, 1, {"horowitz45": 60.0, "horowitz45-neuro": 260.0}, [30.0, 30.0]),
]


def test_energy_by_model_table_savings_per_model():
    headers, cells = energy_by_model_table(matrix_table(ROWS), ROWS)
    assert headers == ["method", "target", "horowitz45 pJ (×ANN / ×SNN)", "horowitz45-neuro pJ (×ANN / ×SNN)"]
    by = {c[0]: c for c in cells}
    assert by["ann"][2] == "800 (1 / –)"
    assert by["snn"][2] == "200 (4 / 1)"
    assert by["binw-slt"][2] == "80 (10 / 2.5)"  # mean over the two seeds
    assert by["binw-slt"][3] == "280 (3.21 / 1.43)"  # the neuron terms shrink the savings


def test_report_has_layer_figure_and_model_table(tmp_path):
    md = build_report(ROWS, tmp_path).read_text()
    png = tmp_path / PLOT_FILES["energy_layers"]
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5000
    assert "## Energy under every cost model" in md and "horowitz45-neuro pJ" in md
    assert "energy_layers.png" in md
    empty = build_report([], tmp_path / "empty").read_text()  # no rows: still a page and figure
    assert "_No energy results._" in empty and (tmp_path / "empty" / PLOT_FILES["energy_layers"]).is_file()
