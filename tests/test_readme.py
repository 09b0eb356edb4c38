"""The README's Python API example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    lines = capsys.readouterr().out.split()
    assert lines[0] == "0.5"
    r = namespace["r"]
    assert lines[1:] == [r.hash, r.baseline("snn").hash] and r.cell.model.tau == 1.5
    assert namespace["trainable"] and all(n.endswith("scores") for n in namespace["trainable"])
    w = namespace["net"][0].weight
    assert len(w.unique()) == 3  # baked: exactly {-alpha, 0, +alpha}
