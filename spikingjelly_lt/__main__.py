"""``python -m spikingjelly_lt`` is the ``sjlt`` command."""

from .cli import main

main()
