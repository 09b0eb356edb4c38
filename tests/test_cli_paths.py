"""Every path a user gives to a command: missing, unwritable, a directory, or garbage.

Each case must end in one ``error:`` line that names the path, exit code 2, no
traceback, and leave an existing file byte for byte as it was. The table is
commands x path options; ``CK`` is a real checkpoint of a tiny trained cell, ``DB``
its results file, ``TK`` a ticket exported from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli

TINY = ["--set", "model.width=0.0625", "--set", "model.timesteps=2", "--set", "data.limit_train=128",
        "--set", "data.limit_test=64", "--epochs", "1", "--device", "cpu"]
MISSING = "/proc/nope/x"  # a folder that cannot be created, even as root
UNWRITABLE = "/proc/x.out"  # a folder that exists but takes no new file, even as root


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A trained ann cell: its results file, checkpoint, ticket; a garbage file and a folder."""
    import sys

    from spikingjelly_lt.cli import main

    base = tmp_path_factory.mktemp("paths")
    db = base / "R.db"
    argv = sys.argv
    try:
        sys.argv = ["sjlt", "train", "--method", "slt", "--results", str(db), *TINY]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code
        (ck,) = (base / "R.db.ckpt").glob("*.pt")
        sys.argv = ["sjlt", "ticket", "export", str(ck), "-o", str(base / "t.sjlt")]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code
    finally:
        sys.argv = argv
    garbage = base / "garbage.bin"
    garbage.write_bytes(b"not a file of ours\x00" * 50)
    folder = base / "folder"
    folder.mkdir()
    return {"DB": str(db), "CK": str(ck), "TK": str(base / "t.sjlt"), "GARBAGE": str(garbage),
            "DIR": str(folder), "BASE": base}


# (id, argv template, the path in the message); {X} = the bad path under test
CASES = [
    # sjlt bench / train --results
    ("bench-results-missing", ["bench", "--methods", "ann", "--results", MISSING], MISSING),
    ("bench-results-unwritable", ["bench", "--methods", "ann", "--results", UNWRITABLE], UNWRITABLE),
    ("bench-results-dir", ["bench", "--methods", "ann", "--results", "{DIR}"], "{DIR}"),
    ("bench-results-garbage", ["bench", "--methods", "ann", "--results", "{GARBAGE}"], "{GARBAGE}"),
    ("train-results-garbage", ["train", "--method", "ann", "--results", "{GARBAGE}"], "{GARBAGE}"),
    # --report, --config, --data-dir
    ("bench-report-missing", ["bench", "--methods", "ann", "--results", "{BASE}/n.db", "--report", MISSING], MISSING),
    ("bench-report-file", ["bench", "--methods", "ann", "--results", "{BASE}/n.db", "--report", "{GARBAGE}"], "{GARBAGE}"),
    ("bench-config-missing", ["bench", "--config", MISSING], MISSING),
    ("bench-config-dir", ["bench", "--config", "{DIR}"], "{DIR}"),
    ("bench-config-garbage", ["bench", "--config", "{GARBAGE}"], "{GARBAGE}"),
    ("train-config-garbage", ["train", "--config", "{GARBAGE}"], "{GARBAGE}"),
    ("config-show-config-garbage", ["config", "show", "--config", "{GARBAGE}"], "{GARBAGE}"),
    ("bench-data-dir-missing", ["bench", "--dataset", "cifar10", "--data-dir", MISSING], MISSING),
    ("bench-data-dir-file", ["bench", "--dataset", "cifar10", "--data-dir", "{GARBAGE}"], "{GARBAGE}"),
    ("bench-data-dir-empty", ["bench", "--dataset", "cifar10", "--data-dir", "{DIR}", "--results", "{BASE}/n.db"],
     "{DIR}"),
    ("config-show-data-dir-missing", ["config", "show", "--data-dir", MISSING], MISSING),
    # sjlt report RESULTS --out
    ("report-in-missing", ["report", MISSING], MISSING),
    ("report-in-dir", ["report", "{DIR}"], "{DIR}"),
    ("report-in-garbage", ["report", "{GARBAGE}"], "{GARBAGE}"),
    ("report-out-missing", ["report", "{DB}", "--out", MISSING], MISSING),
    ("report-out-file", ["report", "{DB}", "--out", "{GARBAGE}"], "{GARBAGE}"),
    # sjlt results export | merge | show
    ("export-in-garbage", ["results", "export", "{GARBAGE}"], "{GARBAGE}"),
    ("export-in-missing", ["results", "export", MISSING], MISSING),
    ("export-out-missing", ["results", "export", "{DB}", "-o", MISSING], MISSING),
    ("export-out-unwritable", ["results", "export", "{DB}", "-o", UNWRITABLE], UNWRITABLE),
    ("export-out-dir", ["results", "export", "{DB}", "-o", "{DIR}"], "{DIR}"),
    ("export-out-is-input", ["results", "export", "{DB}", "-o", "{DB}"], "{DB}"),
    ("merge-src-missing", ["results", "merge", MISSING, "-o", "{BASE}/m.db"], MISSING),
    ("merge-src-dir", ["results", "merge", "{DIR}", "-o", "{BASE}/m.db"], "{DIR}"),
    ("merge-src-garbage", ["results", "merge", "{GARBAGE}", "-o", "{BASE}/m.db"], "{GARBAGE}"),
    ("merge-out-missing", ["results", "merge", "{DB}", "-o", MISSING], MISSING),
    ("merge-out-dir", ["results", "merge", "{DB}", "-o", "{DIR}"], "{DIR}"),
    ("merge-out-garbage", ["results", "merge", "{DB}", "-o", "{GARBAGE}"], "{GARBAGE}"),
    ("show-in-garbage", ["results", "show", "{GARBAGE}"], "{GARBAGE}"),
    ("show-in-dir", ["results", "show", "{DIR}"], "{DIR}"),
    # sjlt ticket export CK -o | info | load
    ("ticket-export-ck-missing", ["ticket", "export", MISSING, "-o", "{BASE}/n.sjlt"], MISSING),
    ("ticket-export-ck-dir", ["ticket", "export", "{DIR}", "-o", "{BASE}/n.sjlt"], "{DIR}"),
    ("ticket-export-ck-garbage", ["ticket", "export", "{GARBAGE}", "-o", "{BASE}/n.sjlt"], "{GARBAGE}"),
    ("ticket-export-out-missing", ["ticket", "export", "{CK}", "-o", MISSING], MISSING),
    ("ticket-export-out-unwritable", ["ticket", "export", "{CK}", "-o", UNWRITABLE], UNWRITABLE),
    ("ticket-export-out-dir", ["ticket", "export", "{CK}", "-o", "{DIR}"], "{DIR}"),
    ("ticket-export-out-is-input", ["ticket", "export", "{CK}", "-o", "{CK}"], "{CK}"),
    ("ticket-info-missing", ["ticket", "info", MISSING], MISSING),
    ("ticket-info-dir", ["ticket", "info", "{DIR}"], "{DIR}"),
    ("ticket-info-garbage", ["ticket", "info", "{GARBAGE}"], "{GARBAGE}"),
    ("ticket-load-garbage", ["ticket", "load", "{GARBAGE}"], "{GARBAGE}"),
    # sjlt energy --checkpoint | --snn-checkpoint | --data-dir
    ("energy-ck-missing", ["energy", "--checkpoint", MISSING], MISSING),
    ("energy-ck-dir", ["energy", "--checkpoint", "{DIR}"], "{DIR}"),
    ("energy-ck-garbage", ["energy", "--checkpoint", "{GARBAGE}"], "{GARBAGE}"),
    ("energy-snn-ck-garbage", ["energy", "--checkpoint", "{CK}", "--snn-checkpoint", "{GARBAGE}"], "{GARBAGE}"),
    ("energy-data-dir-missing", ["energy", "--dataset", "cifar10", "--data-dir", MISSING], MISSING),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("argv, named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_path_is_one_line_exit_2_and_touches_nothing(made, argv, named, capsys, monkeypatch):
    fill = {k: str(v) for k, v in made.items()}
    args = [a.format(**fill) for a in argv]
    named = named.format(**fill)
    files = [made["BASE"] / n for n in ("R.db", "garbage.bin", "t.sjlt")] + [Path(made["CK"])]
    before = {f: _digest(f) for f in files}
    code, out, err = run_cli(args, capsys, monkeypatch)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert lines and lines[-1].startswith("error:") and named in lines[-1], err
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1, err
    assert {f: _digest(f) for f in files} == before, "an existing file changed"
    assert not (made["BASE"] / "m.db").exists() or "merge" not in args[1:2]


def test_export_failure_leaves_the_old_export_whole(made, capsys, monkeypatch):
    """results export -o writes through a temp file: a failing export keeps the old file."""
    import os

    out = made["BASE"] / "old.jsonl"
    code, _, err = run_cli(["results", "export", made["DB"], "-o", str(out)], capsys, monkeypatch)
    assert code == 0, err
    old = out.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", boom)
    code, _, err = run_cli(["results", "export", made["DB"], "-o", str(out), "--format", "csv"], capsys, monkeypatch)
    assert code == 2 and "No space left" in err and "Traceback" not in err
    assert out.read_bytes() == old
    assert not list(out.parent.glob(".old.jsonl.*.tmp"))


def test_energy_refuses_a_snn_reference_that_is_not_a_dense_snn(made, capsys, monkeypatch):
    code, out, err = run_cli(["energy", "--checkpoint", made["CK"], "--snn-checkpoint", made["CK"], "--images", "64"],
                             capsys, monkeypatch)
    assert code == 2 and "not a dense SNN" in err and "'slt'" in err and "Traceback" not in err


def test_energy_says_which_options_the_checkpoint_overrides(made, capsys, monkeypatch):
    code, out, err = run_cli(["energy", "--checkpoint", made["CK"], "--arch", "vgg16", "--width", "1.0",
                              "--images", "64", "--json"], capsys, monkeypatch)
    assert code == 0, err
    (line,) = [ln for ln in err.splitlines() if "ignored" in ln]
    assert "--arch vgg16, --width 1.0 ignored" in line and "model.arch=resnet19" in line, line
    assert json.loads(out)["config"]["model"]["arch"] == "resnet19" if "model" in json.loads(out)["config"] else True
