"""The benchmark matrix on the terminal: one rich table, or several that share the key columns,
fitted to the console's width."""

from __future__ import annotations

from rich.table import Table

from .console import out_console

__all__ = ["SHORT_HEADERS", "matrix_tables", "print_matrix"]


# short two-line headers: the unit on the second line, so the table fits 80 columns
SHORT_HEADERS = {
    "sparsity": "target\nsparsity", "seeds": "seeds", "top-1 %": "top-1\n%", "paper top-1 %": "paper\ntop-1 %",
    "achieved sparsity %": "achieved\nsparsity %", "energy pJ/img": "energy\npJ/img", "saving × ANN": "saving\n× ANN",
    "saving × SNN": "saving\n× SNN", "firing rate": "firing\nrate", "weight bits": "weight\nbits",
    "time to ticket s": "ticket\ns", "status": "status", "val %": "val\n%", "collapsed": "col-\nlapsed",
}
_KEY_HEADERS = ("method", "sparsity", "setting")  # repeated in every part when the table is split


def matrix_tables(rows: list[dict], title: str, width: int) -> list[Table]:
    """The matrix as one rich table, or as several that share the key columns, each <= ``width``.

    No cell is ever truncated: columns that do not fit move to a second (third...) table
    with the method column repeated, instead of every value becoming ``68.…``.
    """
    from ..results.table import format_matrix, matrix_columns, matrix_table

    table_rows = matrix_table(rows)
    headers, cells = format_matrix(table_rows)
    cols = matrix_columns(table_rows)
    # columns with one value for every row go into the title
    constant = {h: cells[0][i] for i, h in enumerate(headers)
                if h in ("arch", "dataset", "seeds") and cells and len({r[i] for r in cells}) <= 1}
    if "status" in headers and cells and {r[headers.index("status")] for r in cells} == {"done"}:
        constant["status"] = "done"
    keep = [i for i, h in enumerate(headers) if h not in constant]

    short = False

    def label(i: int) -> str:
        return SHORT_HEADERS.get(headers[i], headers[i]) if short else headers[i]

    def col_width(i: int) -> int:
        return max([len(line) for line in label(i).split("\n")] + [len(r[i]) for r in cells]) + 3

    # the full one-line headers when they fit, else the short two-line ones (then split if need be)
    short = sum(col_width(i) for i in keep) + 1 > width
    keys = [i for i in keep if headers[i] in _KEY_HEADERS]
    rest = [i for i in keep if i not in keys]
    budget = width - 1 - sum(col_width(i) for i in keys)
    groups: list[list[int]] = [[]]
    used = 0
    for i in rest:
        w = col_width(i)
        if groups[-1] and used + w > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += w
    if "seeds" in constant:
        constant["seeds"] = f"{constant['seeds']} seed(s)"
    extra = ", ".join(v for k, v in constant.items() if k in ("seeds", "status"))
    tables = []
    for n, group in enumerate(groups, 1):
        part = f" ({n}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=f"{title}{part}" + (f" - {extra}" if extra and n == 1 else ""))
        for i in keys + group:
            table.add_column(label(i), justify="right" if cols[i].numeric else "left", no_wrap=True)
        for row in cells:
            table.add_row(*(row[i] for i in keys + group))
        tables.append(table)
    return tables


def print_matrix(rows: list[dict], title: str = "benchmark matrix", console=None) -> None:
    """The aggregated matrix (results.table.matrix_table) on stdout, fitted to the terminal's width."""
    console = console or out_console
    for table in matrix_tables(rows, title, console.width):
        console.print(table)
