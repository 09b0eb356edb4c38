"""The README: its test command is CI's, and every number of its results and claims tables is
the recorded run's (docs/results/*/report.md and results.jsonl): a number that drifts from the
record fails here. (Its former Python API example is docs/python-api.md: tests/test_docs.py.)"""

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)[^)]*\)")


def test_readme_test_command_is_the_one_ci_runs():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command == "./scripts/install.sh && .venv/bin/python -m pytest tests"
    assert f"\n{command}\n" in README.read_text()


# -- the results and claims tables against the recorded runs -----------------------------------------


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of ``text``: a list of rows of stripped cells (separator rows dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(cell.replace("−", "-"))]


def _report_table(folder: Path, title: str) -> list[dict[str, str]]:
    """The rows of the report's table under ``## title`` as dicts keyed by its header."""
    (head, *rows), *_ = _tables(_section((folder / "report.md").read_text(), title))
    return [dict(zip(head, row, strict=True)) for row in rows]


def _run_folder(cell: str) -> Path:
    links = LINK.findall(cell)
    assert len(links) == 1, f"a run cell links its results folder: {cell!r}"
    folder = ROOT / links[0]
    assert (folder / "report.md").is_file(), folder
    return folder


def _same(readme_cell: str, report_cell: str, what: str) -> None:
    """Equal numbers (the README may leave out the report's ± part), or the same dash text."""
    ours, theirs = _numbers(readme_cell), _numbers(report_cell)
    if not ours:
        assert readme_cell.replace("**", "") == report_cell, what
        return
    assert ours == theirs[: len(ours)], f"{what}: README {readme_cell!r}, recorded {report_cell!r}"


def _results_table():
    return _tables(_section(README.read_text(), "Results"))[0]


def test_readme_results_table_is_the_recorded_runs():
    head, *rows = _results_table()
    assert head == ["run", "method", "n", "test top-1 %", "energy pJ/img", "saving × SNN", "firing rate"]
    seen: dict[Path, list[str]] = defaultdict(list)
    folder = None
    for run, method_cell, n, top1, energy, saving, firing in rows:
        folder = _run_folder(run) if run else folder
        assert folder is not None, "the first row names its run"
        method = method_cell.split()[0]
        matrix = {r["method"]: r for r in _report_table(folder, "Matrix")}
        rec = matrix[method]
        where = f"{folder.name}/{method}"
        assert int(n) == int(rec["seeds"]), where
        _same(top1, rec["top-1 %"], f"{where} top-1")
        _same(energy, rec["energy pJ/img"], f"{where} energy")
        _same(saving, rec["saving × SNN"].replace("×", ""), f"{where} saving × SNN")
        _same(firing, rec["firing rate"], f"{where} firing rate")
        seen[folder].append(method)
    assert len(seen) >= 2
    for folder, methods in seen.items():  # every method of the run, each once
        assert sorted(methods) == sorted(r["method"] for r in _report_table(folder, "Matrix")), folder.name


def _energy(folder: Path) -> dict[str, dict[int, float]]:
    """method -> seed -> energy pJ of the done, not collapsed rows of results.jsonl."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        m = row["metrics"]
        if row.get("status") == "done" and not m.get("collapsed"):
            out[row["config"]["method"]][row["config"]["seed"]] = m["energy_pj"]
    return out


def _ratio_ok(text: str, folder: Path, other: str) -> None:
    """'N.Nx less' / 'N.Nx more': binw-slt's energy against ``other``'s, mean over shared seeds."""
    value, direction = re.fullmatch(r"(\d+(?:\.\d+)?)x (less|more)", text).groups()
    e = _energy(folder)
    seeds = sorted(set(e["binw-slt"]) & set(e[other]))
    a = sum(e["binw-slt"][s] for s in seeds) / len(seeds)
    b = sum(e[other][s] for s in seeds) / len(seeds)
    ratio = b / a if direction == "less" else a / b
    assert ratio > 1 and abs(ratio - float(value)) <= 0.5 * 10 ** -len(value.split(".")[1]), \
        f"{folder.name} vs {other}: README {text!r}, recorded {ratio:.3f}x {'less' if b > a else 'more'}"


def test_readme_claims_table_is_the_recorded_verdicts():
    tables = _tables(_section(README.read_text(), "Results"))
    head, *rows = tables[1]
    assert head[0] == "BinW-SLT claim"
    groups = [(i, _run_folder(c)) for i, c in enumerate(head) if LINK.search(c)]  # n, difference, verdict
    assert len(groups) >= 2 and all(head[i + 1].startswith("difference") and head[i + 2] == "verdict"
                                    for i, _ in groups)
    for i, folder in groups:
        claims = {r["claim"]: r for r in _report_table(folder, "Claims")}
        assert sorted("BinW-SLT " + row[0] for row in rows) == sorted(claims), folder.name
        for row in rows:
            rec = claims["BinW-SLT " + row[0]]
            where = f"{folder.name}: {row[0]}"
            n, difference, verdict = row[i], row[i + 1], row[i + 2]
            assert int(n) == int(rec["n"]), where
            difference, _, ratio = difference.partition(": ")
            _same(difference, rec["our difference [95% CI]"], where)
            assert verdict.replace("**", "") == rec["verdict"], where
            if ratio:
                assert rec["metric"].startswith("energy"), where
                _ratio_ok(ratio, folder, rec["A - B"].split(" - ")[1])


def test_readme_prose_numbers_are_recorded():
    section = _section(README.read_text(), "Results")
    text = " ".join(section.split())  # the prose, whatever its line breaks
    # search cost: the ticket-time run's IMP and BinW-SLT times to ticket at sparsity 0.9
    tt = {r["method"]: r for r in _report_table(ROOT / "docs/results/ticket-time", "Matrix") if r["sparsity"] == "90%"}
    imp, binw = _numbers(tt["snn-imp"]["time to ticket s"])[0], _numbers(tt["binw-slt"]["time to ticket s"])[0]
    assert f"took {imp} s against {binw} s for BinW-SLT, {imp / binw:.1f}x" in text
    # the energy paragraph repeats the claims table and the firing rates
    vgg = {r["method"]: r for r in _report_table(ROOT / "docs/results/cpu-vgg", "Matrix")}
    snn_fr, binw_fr = _numbers(vgg["snn"]["firing rate"])[0], _numbers(vgg["binw-slt"]["firing rate"])[0]
    assert f"fires {snn_fr:.3f} against BinW-SLT's {binw_fr:.3f}" in text
    claims = {}
    for row in _tables(section)[1][1:]:
        claims[row[0]] = (row[2].partition(": ")[2], row[5].partition(": ")[2])
    r19, vgg16 = claims["cheaper than the dense SNN (paper: 1.86x)"]
    assert r19 == "1.21x less" and "1.21x on ResNet-19" in text
    assert vgg16 == "1.41x more" and "uses 1.41x *more* energy" in text
    lo, hi = sorted(claims["cheaper than MPT-1/32"], key=lambda s: float(s.split("x")[0]))
    assert f"{lo.split('x')[0]}-{hi.split('x')[0]}x cheaper" in text


@pytest.mark.parametrize("stale", ["32.6", "1.4–1.5x", "1.4-1.5x", "design 5", "design §"])
def test_readme_has_no_superseded_numbers_or_missing_design_refs(stale):
    assert stale not in README.read_text()


def test_readme_counts_the_method_presets():
    from spikingjelly_lt.methods import METHODS

    assert f"`sjlt methods` the {len(METHODS)} method presets" in README.read_text()


def test_readme_sections_the_code_names_exist():
    """Messages that send the user to "README 'Section'" name a heading that exists."""
    headings = set(re.findall(r"^#+ (.+)$", README.read_text(), re.M))
    named = {m for f in (ROOT / "spikingjelly_lt").rglob("*.py")
             for m in re.findall(r"README '([^']+)'", f.read_text())}
    assert named and named <= headings, named - headings


def test_readme_width_gaps_are_the_recorded_ones():
    """The width table and its trend sentence repeat the width study's report.md (Width section)."""
    folder = ROOT / "docs/results/width"
    recorded = {r["width"]: r for r in _report_table(folder, "Width") if r["A - B"] == "binw-slt - bnn-lt"}
    (head, *rows), = [t for t in _tables(_section(README.read_text(), "Results")) if t[0][0] == "binw-slt − bnn-lt"]
    assert head[1:] == ["width", "n", "difference, points [95 % CI]"]
    assert sorted(row[1] for row in rows) == sorted(recorded)  # every width, each once
    for _, width, n, difference in rows:
        rec = recorded[width]
        assert int(n) == int(rec["n"]), width
        _same(difference, rec["A - B (points) [95% CI]"], f"width {width}")
    trend = re.search(r"- binw-slt - bnn-lt: (\S+) points per doubling of width \[(\S+), (\S+)\]; fitted gap at "
                      r"width 1 (\S+) \[(\S+), (\S+)\]", (folder / "report.md").read_text())
    slope, lo, hi, at1, at1_lo, at1_hi = trend.groups()
    text = " ".join(_section(README.read_text(), "Results").split())
    assert f"{slope} points per doubling of width [{lo}, {hi}]" in text
    assert f"extrapolates to {at1} [{at1_lo}, {at1_hi}]" in text
    done = sum(1 for line in (folder / "results.jsonl").read_text().splitlines() if json.loads(line)["status"] == "done")
    assert f"{done} of 36 cells" in text
