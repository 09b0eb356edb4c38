"""The docs agree with the code: docs/python-api.md's example runs as written (moved from the
README), docs/design.md's method table is ``methods.METHODS``, docs/protocol.md's claims are
``stats.CLAIMS``, every "design N" / "docs/X.md §N" reference in code, tests and docs names a
section that exists, and the docs' relative links resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# the pages written for a newcomer (docs/results/** are records of runs, kept as written)
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The first markdown table after ``heading``: rows of stripped cells, separator dropped."""
    rows = []
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


def test_python_api_example_runs(capsys):
    text = (DOCS / "python-api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)  # noqa: S102
    lines = capsys.readouterr().out.split()
    assert lines[0] == "0.5"
    r = namespace["r"]
    assert lines[1:] == [r.hash, r.baseline("snn").hash] and r.cell.model.tau == 1.5
    assert namespace["trainable"] and all(n.endswith("scores") for n in namespace["trainable"])
    w = namespace["net"][0].weight
    assert len(w.unique()) == 3  # baked: exactly {-alpha, 0, +alpha}


def test_design_method_table_is_methods():
    from spikingjelly_lt.methods import METHODS

    head, *rows = _table_after((DOCS / "design.md").read_text(), "### 2.4 Method presets")
    assert head == ["method", "neuron", "weights", "pruner", "in papers"]
    assert [tuple(r) for r in rows] == [(m.name, m.neuron, m.weights, m.pruner, m.paper_name)
                                       for m in METHODS.values()]


def test_protocol_claims_are_stats_claims():
    from spikingjelly_lt.results.stats import CLAIMS

    head, *rows = _table_after((DOCS / "protocol.md").read_text(), "### Claims")
    assert head == ["claim", "A − B", "metric", "claimed sign"]
    assert [tuple(r) for r in rows] == [(c.text, f"{c.a} − {c.b}", c.metric, "+" if c.direction > 0 else "−")
                                       for c in CLAIMS]


def _sections(page: Path) -> set[str]:
    """Section numbers of a page's headings: '## 5. Protocol' -> '5', '### 2.4 Method' -> '2.4'."""
    return {m.group(1) for m in re.finditer(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", page.read_text(), re.M)}


# "design 2.4", "design §4", "design.md section 4", "docs/design.md §2.5", "docs/protocol.md §3"
REFERENCE = re.compile(r"\b(design|protocol|energy|deploy)(?:\.md)?[ \"']*(?:§|section )?\s*"
                       r"(\d+(?:\.\d+)?)(?:\b|(?=\D))")


def _references():
    files = [*PAGES, *sorted((ROOT / "spikingjelly_lt").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py")),
             *sorted((ROOT / "bench").rglob("*.py"))]
    for f in files:
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            for m in REFERENCE.finditer(line):
                if m.group(1) != "design" and "§" not in m.group(0):
                    continue  # "energy 2.5x", "deploy 3 images": only "§" makes it a reference
                more = re.match(r"(?:\s*,\s*§?\d+(?:\.\d+)?)*", line[m.end():]).group(0)  # "§2.2, §2.7"
                for sec in [m.group(2), *re.findall(r"\d+(?:\.\d+)?", more)]:
                    yield f"{f.relative_to(ROOT)}:{i}", m.group(1), sec


def test_every_section_reference_exists():
    refs = list(_references())
    assert any(page == "design" for _, page, _ in refs)
    missing = [(where, page, sec) for where, page, sec in refs if sec not in _sections(DOCS / f"{page}.md")]
    assert not missing, f"references to sections that do not exist: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md":
            anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
            if anchor not in anchors:
                bad.append(target)
    assert not bad, f"{page.name}: links that do not resolve: {bad}"
