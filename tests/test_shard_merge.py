"""Splitting the matrix into shards and merging their results (issue 7, section 3)."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from spikingjelly_lt.cli.request import options_to_cells
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.matrix import expand, parse_shard, shard
from spikingjelly_lt.methods import METHODS, resolve
from spikingjelly_lt.results.store import ResultStore
from spikingjelly_lt.cell import Cell
from conftest import run_cli

TINY = ["--width", "0.0625", "--epochs", "1", "--limit-train", "128", "--timesteps", "2", "--threads", "1"]


def h(cell) -> str:
    return cell.hash


@pytest.fixture(scope="module")
def cells() -> list:
    base = Cell().replace(arch="resnet19", dataset="digits", width=0.25, epochs=2)
    return expand(base, list(METHODS), [0.5, 0.8, 0.9], [0, 1, 2])


def test_expand_dedups_and_puts_baselines_first(cells):
    hashes = [h(c) for c in cells]
    assert len(hashes) == len(set(hashes))
    dense = [m for m in METHODS if not resolve(Cell(method=m)).pruner.sparse]
    sparse = [m for m in METHODS if m not in dense]
    # dense methods ignore sparsity: one cell per seed; sparse ones: one per (sparsity, seed)
    assert len(cells) == 3 * len(dense) + 9 * len(sparse)
    first_seed = [c.method.name for c in cells if c.cell.seed == 0]
    assert first_seed[:2] == ["snn", "ann"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 200])
def test_shards_partition_the_matrix(cells, n):
    parts = [shard(cells, i, n) for i in range(1, n + 1)]
    seen = [h(c) for part in parts for c in part]
    assert len(seen) == len(set(seen))  # no cell twice
    assert set(seen) == {h(c) for c in cells}  # nothing lost
    for part in parts:  # each shard keeps the matrix order (baselines first)
        positions = [cells.index(c) for c in part]
        assert positions == sorted(positions)
    if n <= 8:
        assert all(parts), "every shard gets work when there are many more cells than shards"


@pytest.mark.parametrize("n", [2, 3, 8])
def test_split_is_independent_of_cell_order_and_of_other_cells(cells, n):
    shuffled = cells[:]
    random.Random(0).shuffle(shuffled)
    subset = cells[::3]
    for i in range(1, n + 1):
        want = {h(c) for c in shard(cells, i, n)}
        assert {h(c) for c in shard(shuffled, i, n)} == want
        assert {h(c) for c in shard(subset, i, n)} == want & {h(c) for c in subset}


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("3/8", (3, 8)), ("8/8", (8, 8)), (" 2/4", (2, 4))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "-1/2", "a/b", "1", "1/2/3", "", "2 of 4"])
def test_parse_shard_rejects(text):
    with pytest.raises(UsageError, match="shard"):
        parse_shard(text)


# -- the CLI: shards of a real matrix, merged and reported --------------------------------



def raw_rows(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM results ORDER BY config_hash").fetchall()


def test_cli_shards_merge_and_report(tmp_path, capsys, monkeypatch):
    methods = "ann,bnn,snn"
    all_cells, _ = options_to_cells(
        methods=methods, sparsity=None, seeds=None, profile="smoke", config=None, sets=None, data_dir=None,
        options={"model.arch": "resnet19", "recipe.epochs": 1, "model.timesteps": 2, "model.width": 0.0625,
                 "data.limit_train": 128})
    assert len(all_cells) == 3
    # the smallest N that spreads the 3 cells over at least two shards (empty shards run too)
    n = next(n for n in range(2, 9) if sum(bool(shard(all_cells, i, n)) for i in range(1, n + 1)) >= 2)
    expected = {i: {h(c) for c in shard(all_cells, i, n)} for i in range(1, n + 1)}

    dbs = []
    for i in range(1, n + 1):
        db = tmp_path / f"shard-{i}.db"
        code, out, err = run_cli(["bench", "--methods", methods, "--shard", f"{i}/{n}", "--results", str(db), "--json", *TINY],
                                 capsys, monkeypatch)
        assert code == 0, err
        assert f"{len(expected[i])} cells" in err
        ran = json.loads(out)["cells"]
        assert {c["config_hash"] for c in ran} == expected[i]  # only its own cells
        assert all(c["status"] == "done" for c in ran)
        assert {r["config_hash"] for r in ResultStore(db, create=False).rows()} == expected[i]
        dbs.append(db)

    merged = tmp_path / "all.db"
    code, out, err = run_cli(["results", "merge", *map(str, dbs), "-o", str(merged)], capsys, monkeypatch)
    assert code == 0, err
    assert "3 row(s) added, 0 replaced" in out
    rows = raw_rows(merged)
    assert {r[0] for r in rows} == {h(c) for c in all_cells}  # the union, each cell once
    assert all(r[3] == "done" for r in rows)

    # idempotent: merging again (in either order) changes nothing
    code, out, err = run_cli(["results", "merge", *map(str, reversed(dbs)), "-o", str(merged)], capsys, monkeypatch)
    assert code == 0 and "0 row(s) added, 0 replaced" in out
    assert raw_rows(merged) == rows
    other = tmp_path / "other.db"
    run_cli(["results", "merge", *map(str, reversed(dbs)), "-o", str(other)], capsys, monkeypatch)
    assert raw_rows(other) == rows  # source order does not matter

    # a shard rerun on its own file resumes: nothing trains again
    busy = next(i for i in expected if expected[i])
    code, out, err = run_cli(["bench", "--methods", methods, "--shard", f"{busy}/{n}", "--results", str(dbs[busy - 1]),
                              "--json", *TINY], capsys, monkeypatch)
    assert code == 0 and {c["status"] for c in json.loads(out)["cells"]} == {"skipped"}

    report = tmp_path / "report"
    code, out, err = run_cli(["report", str(merged), "--out", str(report)], capsys, monkeypatch)
    assert code == 0, err
    text = (report / "report.md").read_text()
    for method in ("ann", "bnn", "snn"):
        assert method in out and f"| {method} " in text
    code, out, _ = run_cli(["results", "show", str(merged), "--json"], capsys, monkeypatch)
    assert code == 0 and len(json.loads(out)) == 3
