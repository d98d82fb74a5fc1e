"""Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

mmengine stores only the seed. Every rank's states are saved (``rng_states``, gathered on every
rank before rank 0 writes the checkpoint; ``rng_state`` is rank 0's) and each rank gets its own
back when the world size is the same; after a change of world size (allowed without DeepSpeed:
gear/engine/resume_check.py) rank r takes rank ``r % saved ranks``'s.

Validation runs after the checkpoint of its step and draws random numbers (its dataloader's
worker seeds, model-side sampling), which the checkpoint never saw: the training RNG states are
therefore put back after every validation, so training draws the same numbers whether or not a
validation ran (and whether the run was resumed after it or not). Restoring happens right before the first resumed step, after the
train loop has fast-forwarded its dataloader, so the resumed steps draw the same random numbers
as an uninterrupted run would at that point (model-side randomness: dropout, class dropout).
"""
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
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
    """Checkpoint keys ``rng_state`` (rank 0's RNG states) and ``rng_states`` (every rank's)."""
    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None
        self._gathered = None
        self._training_state = None

    def before_val(self, runner) -> None:
        self._training_state = get_rng_state()

    def after_val(self, runner) -> None:
        if self._training_state is not None:
            set_rng_state(self._training_state)
            self._training_state = None

    def before_save_checkpoint_all_ranks(self, runner) -> None:
        """Every rank's states, gathered (a collective: ``GearRunner.save_checkpoint`` calls this
        on every rank)."""
        state = get_rng_state()
        self._gathered = all_gather_object(state) if get_world_size() > 1 else [state]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()
        if self._gathered is not None:
            checkpoint['rng_states'] = self._gathered
            self._gathered = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_states')
        self._pending = (states[get_rank() % len(states)] if states
                         else checkpoint.get('rng_state'))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
