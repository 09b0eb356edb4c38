"""Installed distribution versions: the one lookup behind ``sjlt --version``, result rows,
ticket headers and the plugin table."""

from __future__ import annotations

__all__ = ["dist_version"]


def dist_version(dist: str, missing: str = "unknown") -> str:
    """The installed version of distribution ``dist`` (e.g. ``"spikingjelly-lt"``), or ``missing``."""
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return missing
