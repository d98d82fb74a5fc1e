"""What every released-checkpoint converter shares: picking the model's state dict out of a
bundle, and the error that names unknown keys."""
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from torch import Tensor


def select_entry(checkpoint: Dict[str, Any], key: Optional[str], order: Sequence[str],
                 holds: Callable[[Any], bool], what: str) -> Dict[str, Tensor]:
    """Pick a state dict out of ``checkpoint``.

    Args:
        checkpoint: a raw state dict or a bundle holding one under a key.
        key: the bundle key to use; None tries ``order``, taking the first entry for which
            ``holds`` is true, then ``checkpoint`` itself.
        order: bundle keys tried when ``key`` is None.
        holds: whether a dict is the wanted state dict (e.g. has encoder weights).
        what: the model's name for error messages ('tokenizer', 'GPT').
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    if key is not None:
        if key not in checkpoint:
            raise KeyError(f'checkpoint has no key {key!r}; it has {sorted(checkpoint)}')
        return checkpoint[key]
    for k in order:
        if holds(checkpoint.get(k)):
            return checkpoint[k]
    if holds(checkpoint):
        return checkpoint
    raise KeyError(f'no {what} state dict among {sorted(checkpoint)}; pass key= one of them')


def unknown_keys_error(keys: Iterable[str], what: str, limit: int = 10) -> ValueError:
    """A ValueError naming (the first ``limit`` of) the keys a converter does not know."""
    keys = sorted(keys)
    more = f' (and {len(keys) - limit} more)' if len(keys) > limit else ''
    return ValueError(f'{len(keys)} unknown keys in the {what} checkpoint: '
                      f'{", ".join(keys[:limit])}{more}')
