"""Read-outs of the quantizer's code distances ``d``: hard indices or (soft) probabilities."""
from .readouts import HardReadout, SoftReadout, StraightThroughReadout

__all__ = ['HardReadout', 'SoftReadout', 'StraightThroughReadout']
