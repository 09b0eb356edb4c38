"""`sjlt bench` / `sjlt train`: resume, determinism, SIGKILL, bad input (issue: bench matrix)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikingjelly_lt.results.store import ResultStore
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.0625", "--epochs", "1", "--limit-train", "128", "--timesteps", "2", "--threads", "1"]




STABLE = ("top1", "sparsity", "mean_firing_rate", "energy_pj", "macs", "acs", "model_bytes", "history")


def test_bench_json_resume_and_determinism(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    args = ["bench", "--methods", "ann,binw-slt,snn-imp", "--results", str(db), "--json", *TINY]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    first = json.loads(out)["cells"]  # --json: stdout is only JSON
    assert [c["status"] for c in first] == ["done"] * 3
    by = {c["config"]["method"]: c for c in first}
    assert by["binw-slt"]["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert by["snn-imp"]["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert by["binw-slt"]["metrics"]["weight_bits"] == 1
    assert by["ann"]["metrics"]["energy_x_ann"] == pytest.approx(1.0)
    assert by["binw-slt"]["metrics"]["energy_x_ann"] > 1
    assert len(by["snn-imp"]["metrics"]["history"]) == 3  # train, prune + rewind, retrain, again (2 rounds)
    # resume: nothing reruns
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert [c["status"] for c in json.loads(out)["cells"]] == ["skipped"] * 3
    # determinism: the same cells from scratch give identical metrics
    code, out, _ = run_cli(args + ["--rerun"], capsys, monkeypatch)
    again = {c["config"]["method"]: c["metrics"] for c in json.loads(out)["cells"]}
    for method, cell in by.items():
        for key in STABLE:
            a, b = again[method][key], cell["metrics"][key]
            if key == "history":  # speed differs run to run; the numbers must not
                a, b = ([{k: v for k, v in h.items() if k != "images_per_s"} for h in x] for x in (a, b))
            assert a == b, (method, key)


def test_bench_table_and_report(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    code, out, err = run_cli(["bench", "--methods", "snn,slt,ann", "--results", str(db), "--report", str(tmp_path / "rep"), *TINY], capsys, monkeypatch)
    assert code == 0, err
    assert "slt" in out and "top-1 %" in out and "saving × SNN" in out
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "energy.png").stat().st_size > 0
    # a later subset run into the same file reports the whole file, not the subset
    code, _, err = run_cli(["bench", "--methods", "ann", "--results", str(db), "--report", str(tmp_path / "rep"), *TINY],
                           capsys, monkeypatch)
    assert code == 0, err
    assert "3 runs: 3 done" in (tmp_path / "rep" / "report.md").read_text()
    rows = ResultStore(db).rows()
    slt = next(r for r in rows if r["config"]["method"] == "slt")
    snn = next(r for r in rows if r["config"]["method"] == "snn")
    assert slt["metrics"]["energy_x_snn"] == pytest.approx(snn["metrics"]["energy_pj"] / slt["metrics"]["energy_pj"])
    code, out, _ = run_cli(["results", "export", str(db), "--format", "csv"], capsys, monkeypatch)
    assert out.splitlines()[0].startswith("config_hash") and len(out.splitlines()) == 4
    # sjlt energy on the slt checkpoint: same counts as the bench, x SNN from the SNN beside it
    ckpt = Path(f"{db}.ckpt") / f"{slt['config_hash']}.pt"
    code, out, err = run_cli(["energy", "--checkpoint", str(ckpt), "--json", "--images", "360"], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    assert data["report"]["energy_pj"] == pytest.approx(slt["metrics"]["energy_pj"], rel=1e-6)
    assert data["snn_reference"].endswith(f"{snn['config_hash']}.pt")
    assert data["x_snn"] == pytest.approx(slt["metrics"]["energy_x_snn"], rel=1e-6)
    # an ANN checkpoint has no T in its config: its dense SNN is still found beside it
    ann = next(r for r in rows if r["config"]["method"] == "ann")
    ckpt = Path(f"{db}.ckpt") / f"{ann['config_hash']}.pt"
    code, out, err = run_cli(["energy", "--checkpoint", str(ckpt), "--json", "--images", "360"], capsys, monkeypatch)
    data = json.loads(out)
    assert data["snn_reference"].endswith(f"{snn['config_hash']}.pt")
    assert data["x_snn"] == pytest.approx(snn["metrics"]["energy_pj"] / ann["metrics"]["energy_pj"], rel=1e-6)
    # without its trained SNN beside it, a trained cell gets no x SNN (never one against an untrained SNN)
    lonely = tmp_path / "lonely" / ckpt.name
    lonely.parent.mkdir()
    lonely.write_bytes(ckpt.read_bytes())
    code, out, err = run_cli(["energy", "--checkpoint", str(lonely), "--json", "--images", "64"], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    assert data["x_snn"] is None and data["snn_reference"].startswith("none: no trained dense SNN")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--arch", "resnet18"], "unknown architecture 'resnet18'; valid: resnet19, vgg16"),
        (["--methods", "ann,binw"], "unknown method 'binw'"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'; valid: cifar10, cifar100, digits"),
        (["--sparsity", "1.0"], "sparsity=1.0 is out of range; valid: float in [0, 1)"),
        (["--sparsity", "-0.1"], "sparsity=-0.1 is out of range; valid: float in [0, 1)"),
        (["--sparsity", "half"], "sparsity 'half' is not a valid float"),
        (["--epochs", "-1"], "recipe.epochs=-1 is out of range; valid: int in [0, 100000]"),
        (["--profile", "huge"], "unknown profile 'huge'; valid: cpu, cpu-vgg, paper, smoke, ticket-time, width"),
        (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "data dir '/nonexistent' does not exist"),
        (["--dataset", "cifar10"], "needs --data-dir"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--energy-model", "foo"], "unknown energy model 'foo'"),
        (["--shard", "3/2"], "shard '3/2'"),
    ],
)
def test_bad_values_are_one_line_exit_2(tmp_path, capsys, monkeypatch, args, expected):
    code, out, err = run_cli(["bench", "--results", str(tmp_path / "r.db"), *args], capsys, monkeypatch)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err and out == ""


def test_corrupt_results_file_is_an_error_and_untouched(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    db.write_bytes(b"not a database at all" * 10)
    before = db.read_bytes()
    code, _, err = run_cli(["bench", "--results", str(db), *TINY], capsys, monkeypatch)
    assert code == 2 and str(db) in err and db.read_bytes() == before


def test_corrupt_checkpoint_is_an_error_and_untouched(tmp_path, capsys, monkeypatch):
    from spikingjelly_lt.matrix import expand

    db = tmp_path / "r.db"
    # the bench's profile decides the recipe; compute the hash the same way it will
    from spikingjelly_lt.profiles import get_profile

    cell = expand(get_profile("smoke").base().replace(arch="resnet19", width=0.0625, epochs=1, limit_train=128, timesteps=2), ["ann"], [0.5], [0])[0]
    ckpt_dir = Path(f"{db}.ckpt")
    ckpt_dir.mkdir()
    bad = ckpt_dir / f"{cell.hash}.pt"
    bad.write_bytes(b"\x80garbage")
    code, _, err = run_cli(["bench", "--methods", "ann", "--results", str(db), *TINY], capsys, monkeypatch)
    # the damaged checkpoint fails its own cell (row 'failed', reason says so), never the matrix
    assert code == 1 and "failed" in err and bad.read_bytes() == b"\x80garbage"
    from spikingjelly_lt.results.store import ResultStore

    row = ResultStore(db).get(cell.hash)
    assert row["status"] == "failed" and "corrupt" in row["reason"]


def test_sigkill_mid_matrix_keeps_done_cells_and_reruns_the_interrupted_one(tmp_path):
    db = tmp_path / "r.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "spikingjelly_lt", "bench", "--methods", "ann,bnn,snn", "--results", str(db),
           "--width", "0.0625", "--epochs", "40", "--limit-train", "256", "--timesteps", "2", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.5)
            if db.exists():
                try:
                    con = sqlite3.connect(db)
                    done = con.execute("select count(*) from results where status='done'").fetchone()[0]
                    running = con.execute("select count(*) from results where status='running'").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    continue
                if done >= 1 and running == 1:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = ResultStore(db)
    done_before = {r["config_hash"]: r["finished_at"] for r in store.rows("done")}
    assert len(done_before) >= 1 and len(store.rows("running")) == 1
    store.close()
    # rerun the same command: done cells are skipped (finished_at unchanged), the rest complete
    result = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    statuses = {c["config_hash"]: c["status"] for c in json.loads(result.stdout)["cells"]}
    for h in done_before:
        assert statuses[h] == "skipped"
    assert sorted(statuses.values()).count("done") == 3 - len(done_before)
    store = ResultStore(db)
    assert {r["config_hash"]: r["finished_at"] for r in store.rows("done") if r["config_hash"] in done_before} == done_before
    assert len(store.rows("done")) == 3


def test_non_finite_loss_fails_the_cell_with_its_reason_and_the_matrix_goes_on(tmp_path, monkeypatch):
    import torch

    from spikingjelly_lt.matrix import expand
    from spikingjelly_lt.runner import run_matrix
    from spikingjelly_lt.training import trainer
    from spikingjelly_lt.cell import Cell

    real = torch.nn.functional.cross_entropy

    def poisoned(out, y):  # the bnn cell's loss turns NaN; the others train normally
        loss = real(out, y)
        return loss * float("nan") if poisoned.on else loss

    poisoned.on = False
    monkeypatch.setattr(trainer.nn.functional, "cross_entropy", poisoned)
    cells = expand(Cell().replace(width=0.0625, epochs=1, limit_train=128, timesteps=2), ["ann", "bnn"], [0.5], [0])
    store = ResultStore(tmp_path / "r.db")

    def progress(event, index=0, total=0, **info):
        if event == "start":
            poisoned.on = info["cell"]["method"] == "bnn"

    outcomes = run_matrix(cells, store, device=torch.device("cpu"), checkpoint_dir=tmp_path / "ck", progress=progress)
    status = {o.resolved.method.name: o for o in outcomes}
    assert status["ann"].status == "done"
    assert status["bnn"].status == "failed" and "non-finite loss" in status["bnn"].reason
    row = store.get(status["bnn"].hash)
    assert row["status"] == "failed" and "round 0 epoch 1 step 1" in row["reason"]
