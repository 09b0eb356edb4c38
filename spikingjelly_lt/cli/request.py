"""What a command asks for -> the cells it runs: the ``--set`` / ``--config`` options, a request's
base cell (profile, file, ``--set``, options) with its ``--data-dir`` checked, and the matrix's
grid axes. Shared by ``bench``, ``train``, ``config show`` and ``tune``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import plugins
from ..errors import UsageError
from ..methods import METHODS

__all__ = ["SetOption", "ConfigOption", "GRID_FIELDS", "resolve_request", "check_data_dir",
           "grid_fields_requested", "options_to_cells", "parse_list"]


SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="KEY=VALUE for any cell field (repeatable; dotted, e.g. model.tau=1.5; `sjlt config show`).")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="TOML file of cell fields (\\[model] tau = 1.5), applied after the profile, before --set.")]


def resolve_request(*, profile: str = "smoke", config: Path | None = None, sets: list[str] | None = None,
                    options: dict | None = None, data_dir: str | None = None, check_data: bool = True):
    """The base cell of a request and its profile (:func:`~spikingjelly_lt.profiles.request_cell`:
    profile, then file, then ``--set``, then options), with ``--data-dir`` checked against its data set.

    ``options`` maps dotted keys to explicit option values (None = not given).
    """
    from ..profiles import request_cell

    cell, prof = request_cell(profile, config=config, sets=sets, options=options)
    check_data_dir(cell.data.dataset, data_dir, required=check_data)
    return cell, prof


def check_data_dir(dataset: str, data_dir: str | None, *, required: bool = True) -> None:
    """``--data-dir`` as data set ``dataset`` wants it: given where it needs one (if ``required``),
    absent where it reads none, and an existing folder."""
    takes = getattr(plugins.lookup("datasets", dataset), "takes_data_dir", None)  # True: needs it, False: reads none
    if required and takes and not data_dir:
        raise UsageError(f"dataset {dataset!r} needs --data-dir (a folder holding the official python-format files)")
    if data_dir and takes is False:
        raise UsageError(f"dataset {dataset!r} reads no --data-dir (given {data_dir!r}); drop the option")
    if data_dir and not Path(data_dir).exists():
        raise UsageError(f"data dir {data_dir!r} does not exist")
    if data_dir and not Path(data_dir).is_dir():
        raise UsageError(f"data dir {data_dir!r} is a file, not a folder")


# the matrix's own axes (dotted cell key -> its option)
GRID_FIELDS = {"method": "--methods", "sparsity": "--sparsity", "seed": "--seeds", "model.width": "--width"}


def grid_fields_requested(config: Path | None, sets: list[str] | None) -> set[str]:
    """Which of the grid's own fields (method, sparsity, seed, width) ``--config`` / ``--set`` give."""
    from ..cell import knobs, parse_assignment, read_config_file

    keys = set(read_config_file(config)) if config is not None else set()
    keys |= {parse_assignment(t)[0] for t in sets or ()}
    dotted = {k.name: key for key, k in knobs().items()}
    return {dotted.get(k, k) for k in keys} & set(GRID_FIELDS)


def options_to_cells(*, methods, sparsity, seeds, width=None, profile, config, sets, options, data_dir,
                      option_names=None):
    """The cells of a request. A grid field given by ``--set`` / ``--config`` is the grid's only
    value on that axis; given together with its own option (``--sparsity`` ...) it is refused."""
    from ..matrix import expand

    cell, prof = resolve_request(profile=profile, config=config, sets=sets, options=options, data_dir=data_dir)
    explicit = {"method": methods, "sparsity": sparsity, "seed": seeds,
                "model.width": None if width is None else str(width)}
    names = {**GRID_FIELDS, **(option_names or {})}
    for key in sorted(grid_fields_requested(config, sets)):
        if explicit[key] is not None:
            raise UsageError(f"{key} is given twice: by --set/--config ({cell.get(key)!r}) and by {names[key]} "
                             f"({explicit[key]!r}); use {names[key]} only")
        explicit[key] = str(cell.get(key))
    methods, sparsity, seeds, width = explicit["method"], explicit["sparsity"], explicit["seed"], explicit["model.width"]
    method_list = prof.methods if methods is None else (
        tuple(METHODS) if methods.strip() == "all" else parse_list(methods, "method list"))
    sparsities = parse_list(sparsity, "sparsity", float) if sparsity else list(prof.sparsities)
    seed_plan = parse_list(seeds, "seed", int) if seeds else prof.seed_plan(method_list)
    widths = parse_list(width, "width", float) if width else list(prof.widths or (cell.model.width,))
    for w in widths:
        cell.replace(**{"model.width": w})  # a bad width is one line naming it and the range
    return expand(cell, method_list, sparsities, seed_plan, widths), prof


def parse_list(text: str | None, kind: str, cast=str) -> list | None:
    """'a,b,c' -> [a, b, c] with ``cast``; a bad item is one clear error."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"{kind} {text!r} is empty; give a comma-separated list")
    out = []
    for item in items:
        try:
            out.append(cast(item))
        except ValueError:
            raise UsageError(f"{kind} {item!r} is not a valid {cast.__name__}") from None
    return out
