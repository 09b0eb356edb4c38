"""spikingjelly-lt: lottery tickets (BinW-SLT, biprop, edge-popup, IMP) for SpikingJelly.

Importing the package is cheap: torch and SpikingJelly load only when a submodule
that needs them is imported. Plugins import ``hookimpl`` from here.
"""

import logging

import pluggy

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__", "logger"]

hookimpl = pluggy.HookimplMarker("spikingjelly_lt")
logger = logging.getLogger("spikingjelly_lt")
logger.addHandler(logging.NullHandler())
