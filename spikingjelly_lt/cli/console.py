"""The two rich Consoles every command writes through (data to stdout, progress and logs to
stderr) and the logging set-up."""

from __future__ import annotations

import json
import logging
import math

from rich.console import Console
from rich.markup import escape

__all__ = ["err_console", "out_console", "setup_logging", "dump_json"]

err_console = Console(stderr=True)
out_console = Console()
if not out_console.is_terminal:  # a file or pipe: never squeeze the table
    out_console = Console(width=200)


class _ConsoleHandler(logging.Handler):
    """One log record, one stderr line (never wrapped), through the shared Console."""

    STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red", "DEBUG": "dim"}

    def emit(self, record: logging.LogRecord) -> None:
        style = self.STYLES.get(record.levelname)
        msg = escape(record.getMessage())
        prefix = f"[{style}]{record.levelname.lower()}:[/{style}] " if style else ""
        err_console.print(prefix + msg, soft_wrap=True, highlight=False)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; under torchrun only rank 0 speaks (other ranks: errors only)."""
    import os

    logger = logging.getLogger("spikingjelly_lt")
    if int(os.environ.get("RANK", "0")) != 0:
        logger.setLevel(logging.ERROR)
        err_console.quiet = True
        out_console.quiet = True
        return
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # CPU builds: noise


def dump_json(obj) -> str:
    def default(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        return str(o)

    return json.dumps(obj, indent=2, default=default, allow_nan=False)
