"""Results: the SQLite store (one row per benchmark cell), the aggregated matrix (table), its
figures (plots) and the markdown report.

Importing this package does not import torch or matplotlib; the plots load matplotlib
when :func:`build_report` runs.
"""

from spikingjelly_lt.results.report import build_report
from spikingjelly_lt.results.store import (
    EXPORT_FORMATS,
    SCHEMA_VERSION,
    STATUSES,
    MergeStats,
    ResultStore,
    canonical_json,
    config_hash,
    merge,
)
from spikingjelly_lt.results.table import format_matrix, matrix_table

__all__ = [
    "EXPORT_FORMATS",
    "SCHEMA_VERSION",
    "STATUSES",
    "MergeStats",
    "ResultStore",
    "build_report",
    "canonical_json",
    "config_hash",
    "format_matrix",
    "matrix_table",
    "merge",
]
