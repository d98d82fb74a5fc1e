"""Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

mmengine stores only the seed. Restoring happens right before the first resumed step, after the
train loop has fast-forwarded its dataloader, so the resumed steps draw the same random numbers
as an uninterrupted run would at that point (model-side randomness: dropout, class dropout).
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from gear.registry import HOOKS


def get_rng_state() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Checkpoint key ``rng_state``: the RNG states of the rank that saves."""
    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_state')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
