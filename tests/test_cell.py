"""One cell description (issue 11 sections 1-2): fields, overrides, identity, baselines, CLI knobs."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from spikingjelly_lt.cell import Cell, knobs, read_config_file
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.profiles import get_profile
from spikingjelly_lt.results.store import SCHEMA_VERSION, ResultStore
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_field_is_defined_once_with_help_and_a_unique_leaf_name():
    ks = knobs()
    assert all(k.help for k in ks.values())
    leaves = [k.name for k in ks.values()]
    assert len(leaves) == len(set(leaves))
    assert {"model.tau", "model.v_threshold", "model.lif_impl", "recipe.score_lr", "recipe.imp_rounds",
            "recipe.rewind_epoch", "recipe.lr"} <= set(ks)


def test_replace_accepts_top_level_leaf_and_dotted_keys():
    c = Cell().replace(method="snn", tau=1.5, **{"recipe.score_lr": 0.05})
    assert (c.method, c.model.tau, c.recipe.score_lr) == ("snn", 1.5, 0.05)
    assert c.get("model.tau") == c.get("tau") == 1.5
    assert Cell.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("key, value, message", [
    ("model.tua", "1", r"unknown cell key 'model.tua'; valid: method, sparsity, .*model\.tau"),
    ("model.tau", "abc", r"model.tau='abc' is not a valid float; valid: float in \[1, inf\]"),
    ("model.tau", "0.5", r"model.tau=0.5 is out of range; valid: float in \[1, inf\]"),
    ("sparsity", "1.0", r"sparsity=1.0 is out of range; valid: float in \[0, 1\)"),
    ("recipe.epochs", "2.5", r"recipe.epochs='2.5' is not a valid int"),
    ("model.fc_bn", "maybe", r"model.fc_bn='maybe' is not a boolean; valid: true, false"),
    ("model.lif_impl", "cuda", r"model.lif_impl='cuda' is not valid; valid: one of auto, fast, torch, spikingjelly"),
])
def test_bad_values_name_key_value_and_range(key, value, message):
    with pytest.raises(UsageError, match=message):
        Cell().with_values({key: value}, parse=True)


def test_text_values_parse_to_the_field_type():
    c = Cell().with_values({"model.fc_bn": "false", "recipe.epochs": "3", "data.limit_train": "none",
                            "model.width": "0.5"}, parse=True)
    assert (c.model.fc_bn, c.recipe.epochs, c.data.limit_train, c.model.width) == (False, 3, None, 0.5)


def test_toml_file_nested_and_dotted(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('method = "snn"\n"recipe.lr" = 0.05\n[model]\ntau = 1.5\n')
    assert read_config_file(f) == {"method": "snn", "recipe.lr": 0.05, "model.tau": 1.5}
    f.write_text("[model]\ntaux = 1\n")
    with pytest.raises(UsageError, match="unknown key 'model.taux'"):
        read_config_file(f)
    f.write_text("[model\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        read_config_file(f)


def test_identity_counts_only_the_fields_a_method_uses():
    base = Cell(method="binw-slt")
    ann, ann_tau = resolve(base.replace(method="ann")), resolve(base.replace(method="ann", tau=1.5))
    assert ann.hash == ann_tau.hash  # the ANN has no tau, no T, no sparsity, no score lr
    assert {"timesteps", "tau", "v_threshold", "lif_impl"}.isdisjoint(ann.key()["model"])
    assert "sparsity" not in ann.key() and "score_lr" not in ann.key()["recipe"]
    snn, snn_tau = resolve(base.replace(method="snn")), resolve(base.replace(method="snn", tau=1.5))
    assert snn.hash != snn_tau.hash
    # the LIF implementation is part of a spiking cell's identity
    assert resolve(base.replace(lif_impl="spikingjelly")).hash != resolve(base).hash
    # IMP knobs count for IMP only
    assert resolve(base.replace(imp_rounds=3)).hash == resolve(base).hash
    imp = base.replace(method="snn-imp")
    assert resolve(imp.replace(imp_rounds=3)).hash != resolve(imp).hash


def test_baseline_is_replace_method_and_keeps_the_recipe():
    cell = get_profile("smoke").base().replace(method="ann", tau=1.25)
    r = resolve(cell)
    snn = r.baseline("snn")
    assert snn.cell == cell.replace(method="snn")
    assert snn.cell.model.tau == 1.25  # an ANN cell keeps the fields it ignores: its SNN baseline has them
    assert r.baseline_hashes()["snn"] == resolve(cell.replace(method="snn")).hash
    assert "ann" not in resolve(cell).baseline_hashes()


def test_no_method_branches_in_the_trainer():
    for path in (ROOT / "spikingjelly_lt" / "training").glob("*.py"):
        text = path.read_text()
        assert not re.search(r'"imp"|search ==|\.search\b|get_method|"supermask"', text), path


def test_train_set_records_the_value_in_the_stored_cell(tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.db"
    code, out, err = run_cli(["train", "--method", "binw-slt", "--set", "model.v_threshold=0.75", "--epochs", "1",
                              "--set", "model.width=0.0625", "--set", "data.limit_train=128", "--set", "model.timesteps=2",
                              "--results", str(db), "--json"], capsys, monkeypatch)
    assert code == 0, err
    row = json.loads(out)["cells"][0]
    assert row["cell"]["cell"]["model"]["v_threshold"] == 0.75 and row["status"] == "done"
    stored = ResultStore(db, create=False).rows()[0]
    assert stored["cell"]["cell"]["model"]["v_threshold"] == 0.75
    assert stored["config"]["model"]["v_threshold"] == 0.75  # in the identity too
    code, out, err = run_cli(["results", "show", str(db), stored["config_hash"][:6], "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["cell"]["cell"]["model"]["v_threshold"] == 0.75


def test_order_profile_file_set_options(tmp_path, capsys, monkeypatch):
    f = tmp_path / "c.toml"
    f.write_text("[model]\ntau = 1.5\nwidth = 0.5\n[recipe]\nepochs = 7\n")
    code, out, err = run_cli(["config", "show", "--method", "snn", "--config", str(f), "--set", "model.tau=1.25",
                              "--json"], capsys, monkeypatch)
    assert code == 0, err
    cell = json.loads(out)["cell"]
    # the file beats the profile (width 0.25, epochs 10), --set beats the file (tau)
    assert (cell["model"]["tau"], cell["model"]["width"], cell["recipe"]["epochs"]) == (1.25, 0.5, 7)
    assert cell["model"]["v_threshold"] == 0.5  # the smoke profile's
    # an explicit option beats --set
    from spikingjelly_lt.cli.request import resolve_request

    c, _ = resolve_request(profile="smoke", config=f, sets=["recipe.epochs=3"], options={"recipe.epochs": 2})
    assert c.recipe.epochs == 2


@pytest.mark.parametrize("args, message", [
    (["--set", "model.tau"], "must look like KEY=VALUE"),
    (["--set", "model.tua=1"], "unknown cell key 'model.tua'"),
    (["--set", "recipe.epochs=-1"], r"recipe.epochs=-1 is out of range; valid: int in \[0, 100000\]"),
    (["--config", "/nonexistent.toml"], "does not exist"),
])
def test_bad_set_is_one_line_exit_2(args, message, capsys, monkeypatch):
    code, out, err = run_cli(["bench", *args], capsys, monkeypatch)
    assert code == 2 and re.search(message, err) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_methods_and_profiles_list_presets(capsys, monkeypatch):
    code, out, _ = run_cli(["methods", "--json"], capsys, monkeypatch)
    methods = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and methods["binw-slt"]["pruner"] == "supermask" and methods["snn-imp-et"]["pruner"] == "imp-et"
    code, out, _ = run_cli(["profiles", "--json"], capsys, monkeypatch)
    profiles = {p["name"]: p for p in json.loads(out)}
    assert code == 0 and profiles["smoke"]["sets"]["model.v_threshold"] == 0.5
    code, out, _ = run_cli(["profiles"], capsys, monkeypatch)
    assert code == 0 and "model.v_threshold=0.5" in out


_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE results (config_hash TEXT PRIMARY KEY, config TEXT NOT NULL, metrics TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')), reason TEXT, started_at TEXT,
    finished_at TEXT, env TEXT);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
"""


def _v1_db(path: Path) -> None:
    """A results file as schema 1 wrote it: flat, normalized configs."""
    config = {"arch": "resnet19", "dataset": "digits", "method": "ann", "sparsity": 0.0, "seed": 0,
              "timesteps": None, "tau": None, "epochs": 10, "width": 0.25, "batch_size": 64, "lr": 0.1,
              "v_threshold": 0.5, "sign_gradient": "", "energy_model": "horowitz45"}
    metrics = {"top1": 0.9889, "sparsity": 0.0, "energy_pj": 3.99e7, "energy_model": "horowitz45",
               "train_seconds": 7.2, "time_to_ticket_s": 7.2, "weight_bits": 32}
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1_SCHEMA)
        conn.execute("INSERT INTO results VALUES (?, ?, ?, 'done', NULL, '2026-01-01', '2026-01-01', '{}')",
                     ("0123456789abcdef", json.dumps(config), json.dumps(metrics)))


def test_schema_1_results_stay_readable_and_upgrade_on_write(tmp_path, capsys, monkeypatch):
    db = tmp_path / "old.db"
    _v1_db(db)
    code, out, err = run_cli(["results", "show", str(db)], capsys, monkeypatch)
    assert code == 0, err
    assert "98.89" in out and "ann" in out
    code, out, err = run_cli(["results", "show", str(db), "0123", "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["config"]["method"] == "ann"
    code, out, err = run_cli(["report", str(db), "--out", str(tmp_path / "rep")], capsys, monkeypatch)
    assert code == 0, err
    assert "| ann " in (tmp_path / "rep" / "report.md").read_text()
    with sqlite3.connect(db) as conn:  # reading does not touch the file
        assert conn.execute("SELECT value FROM meta").fetchone()[0] == "1"
    store = ResultStore(db)
    h = store.begin({"method": "snn"}, {}, {"cell": {"method": "snn"}})
    assert store.get(h)["cell"] == {"cell": {"method": "snn"}}
    assert store.get("0123456789abcdef")["cell"] == {}  # the old row, no cell recorded
    with sqlite3.connect(db) as conn:
        assert int(conn.execute("SELECT value FROM meta").fetchone()[0]) == SCHEMA_VERSION == 4
    assert Cell.from_dict(store.get("0123456789abcdef")["config"]).model.tau == 2.0  # None -> default
