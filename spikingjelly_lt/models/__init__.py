"""Architectures (each a built-in plugin) and the root wrapper that runs T steps."""

from .network import Network, scaled

__all__ = ["Network", "scaled"]
