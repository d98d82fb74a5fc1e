"""Frozen sub-networks (perceptual nets, alignment teachers, frozen tokenizers).

A frozen network is always in eval mode, never requires grad, follows ``.to(device)`` with its
owner, and is left out of its owner's ``state_dict``: checkpoints hold only what training
changes, and loading one never asks for a teacher's or a perceptual net's weights.
Gradients still flow *through* a frozen network to its inputs.

``frozen(module)`` is the temporary version, for a trainable module that must not change during
one optimizer phase (the discriminator during the tokenizer step, the AR during GEAR's
tokenizer step): no parameter gradients, buffers restored on exit.
"""
import contextlib

import torch
from torch import nn


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode and turn off ``requires_grad`` of all its parameters."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class FrozenNet(nn.Module):
    """Base class for a module whose weights are fixed and not part of checkpoints.

    Subclasses build their network(s) in ``__init__`` and call ``self.freeze_()`` at the end.
    """

    def __init__(self):
        super().__init__()
        self._register_state_dict_hook(_drop_own_keys)
        self._register_load_state_dict_pre_hook(_ignore_own_keys, with_module=True)
        self.register_load_state_dict_post_hook(_forgive_missing)

    def freeze_(self) -> 'FrozenNet':
        freeze(self)
        return self

    def train(self, mode: bool = True) -> 'FrozenNet':
        """Stay in eval mode whatever the owner asks (dropout / batch-norm statistics fixed)."""
        return super().train(False)


def _drop_own_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]
    return state_dict


def _ignore_own_keys(module, state_dict, prefix, local_metadata, strict, missing_keys,
                     unexpected_keys, error_msgs):
    """Loading, before: drop any stored weights of the frozen net; remember where it sits."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]
    module._frozen_prefix = prefix


def _forgive_missing(module, incompatible_keys):
    """Loading, after: the frozen net's own weights were never expected."""
    prefix = getattr(module, '_frozen_prefix', None)
    if prefix is not None:
        incompatible_keys.missing_keys[:] = [
            k for k in incompatible_keys.missing_keys if not k.startswith(prefix)]


@contextlib.contextmanager
def frozen(module: nn.Module, eval_mode: bool = False):
    """Within the block, ``module`` only passes gradients through: its parameters get none and
    its buffers (e.g. batch-norm running statistics) are restored on exit.

    Args:
        module: the module to freeze for the duration of the block.
        eval_mode: also switch to eval mode (no dropout; batch norm uses running statistics).
    """
    flags = [p.requires_grad for p in module.parameters()]
    buffers = [b.detach().clone() for b in module.buffers()]
    was_training = module.training
    module.requires_grad_(False)
    if eval_mode:
        module.eval()
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        with torch.no_grad():
            for b, saved in zip(module.buffers(), buffers):
                b.copy_(saved)
        module.train(was_training)
