"""Frozen sub-networks (perceptual nets, alignment teachers, frozen tokenizers).

A frozen network is always in eval mode, never requires grad, follows ``.to(device)`` with its
owner, and is left out of its owner's ``state_dict``: checkpoints hold only what training
changes, and loading one never asks for a teacher's or a perceptual net's weights.
Gradients still flow *through* a frozen network to its inputs.
"""
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
