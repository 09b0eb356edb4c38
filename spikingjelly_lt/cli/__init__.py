"""The ``sjlt`` command line: one Typer app (assembled in :mod:`.app`), one ``*_cmd`` module per command group.

Data goes to stdout (a rich table, or JSON with ``--json``); progress and logs go to
stderr through one rich Console. A user error ends in one red line and exit code 2.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from .app import app
from .console import err_console

__all__ = ["app", "main", "err_console", "INTERRUPTED"]


INTERRUPTED = "interrupted: rerun the same command to resume"
_MISSING_HINT = {
    "spikingjelly": "spikingjelly is not installed: pip install --no-deps 'spikingjelly==2.0.0' 'loguru>=0.7,<1' "
                    "(--no-deps keeps your torch; see README 'Install with pip')",
    "loguru": "loguru (needed by spikingjelly) is not installed: pip install 'loguru>=0.7,<1'",
}


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _interrupted() -> None:
    """One line, then exit 130 at once: the row is marked and every write is committed, and an
    interpreter shutdown still unwinding the interruption could otherwise end the process by
    SIGINT (exit -2) instead."""
    import os

    err_console.print(f"[yellow]{INTERRUPTED}[/yellow]", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt  # the same path as Ctrl-C: mark the running row, one line, exit 130


def main() -> None:
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread
        previous = None
    try:
        _main()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:  # typer turns Ctrl-C into exit code 130
        if exc.code == 130:
            _interrupted()
        raise
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in _MISSING_HINT:
            raise
        _fail(_MISSING_HINT[top])
    except OSError as exc:  # a path the user gave that no command checked first: one line, never a traceback
        if exc.filename is None:
            raise
        what = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
        _fail(f"{what}: {exc.strerror or exc}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    from ..errors import UsageError

    try:
        _check_list_options(sys.argv[1:])
        app()
    except UsageError as exc:
        _fail(str(exc))


# options that take one comma-separated list, on commands that take no positional argument
_LIST_OPTIONS = {"bench": ("--methods", "--sparsity", "--seeds")}


def _check_list_options(argv: list[str]) -> None:
    """``--sparsity 0.5 0.9``: Click would say "unexpected extra argument"; say what to type."""
    from ..errors import UsageError

    if not argv or argv[0] not in _LIST_OPTIONS:
        return
    lists = _LIST_OPTIONS[argv[0]]
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return
        name, eq, _ = tok.partition("=")
        if name in lists:
            start = i + (0 if eq else 1)
            values = [argv[start].partition("=")[2] if eq else argv[start]] if start < len(argv) else []
            j = start + 1
            while j < len(argv) and not argv[j].startswith("-"):
                values.append(argv[j])
                j += 1
            if len(values) > 1:
                raise UsageError(f"{name} takes one comma-separated list: {name} {','.join(values)} "
                                 f"(not {' '.join(values)})")
            i = j
            continue
        i += 1
