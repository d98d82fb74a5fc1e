"""Training hooks: codebook monitoring, RNG state in checkpoints, validation at step 0,
reconstruction grids."""
from .codebook_monitor import CodebookMonitorHook
from .reconstruction_vis import ReconstructionVisHook
from .rng_state import RNGStateHook
from .validate_at_start import ValidateAtStartHook

__all__ = ['CodebookMonitorHook', 'ReconstructionVisHook', 'RNGStateHook', 'ValidateAtStartHook']
