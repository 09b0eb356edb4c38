"""Weight parametrizations (supermask, binary) and neurons."""
