"""Utilities: checkpoint I/O, distributed helpers, frozen sub-networks."""
