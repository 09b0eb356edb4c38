"""Old home of the request helpers, kept for scripts that import them from here (the width study's
docs/results/width/run.py): ``sjlt bench`` lives in :mod:`.bench_cmd`, the helpers in :mod:`.request`."""

from .request import check_data_dir, options_to_cells, resolve_request

_options_to_cells = options_to_cells

__all__ = ["check_data_dir", "options_to_cells", "resolve_request"]
