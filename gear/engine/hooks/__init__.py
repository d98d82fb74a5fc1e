"""Training hooks: codebook monitoring, RNG state in checkpoints, validation at step 0,
reconstruction grids, weights export, generative evaluation (FID) during training, checkpoints
on steps, time and signals, the check of pre-extracted codes against the model, the progress
file the pipeline reads."""
from .codebook_monitor import CodebookMonitorHook
from .codes_check import CodesCheckHook
from .export_weights import ExportWeightsHook
from .generative_eval import GenerativeEvalHook
from .reconstruction_vis import ReconstructionVisHook
from .rng_state import RNGStateHook
from .validate_at_start import ValidateAtStartHook

__all__ = ['CodebookMonitorHook', 'CodesCheckHook', 'ExportWeightsHook', 'GenerativeEvalHook',
           'ReconstructionVisHook', 'RNGStateHook', 'ValidateAtStartHook']
from .log_sync import LogSyncHook  # noqa: E402

__all__ += ['LogSyncHook']
from .checkpoint import GearCheckpointHook  # noqa: E402
from .signals import SignalHook, TrainingInterrupted  # noqa: E402

__all__ += ['GearCheckpointHook', 'SignalHook', 'TrainingInterrupted']
from .progress import ProgressHook, read_progress  # noqa: E402

__all__ += ['ProgressHook', 'read_progress']
