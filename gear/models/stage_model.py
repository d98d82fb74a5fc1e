"""``StageModel``: what every stage model shares with the runner, and nothing of any phase.

- ``train_module(name)``: the handle through which a phase calls a trainable module. A
  distributed wrapper (``gear.engine``) installs DDP / DeepSpeed handles with
  ``set_train_modules``; they are kept out of the module tree, so ``state_dict``,
  ``parameters()`` and EMA key names do not change. Without one, the module itself.
- ``init_from``: the earlier stage's weights (``gear.models.init_from``), applied once in
  ``init_weights``, as mmengine applies ``init_cfg``.

Stage models (``TokenizerWarmup``, ``GEAR``, ``GEAREndToEnd``, ``FrozenTokenizerAR``) derive
from this class only; none derives from another.
"""
from typing import Dict, Optional, Sequence

from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import nn

from .init_from import apply_init_from, check_init_from


class StageModel(BaseModel):
    """Base of the stage models.

    Args:
        init_from (list[dict], optional): ``dict(checkpoint=PATH, modules={src: dst}, key=None)``
            entries; see ``gear.models.init_from``.
        data_preprocessor (dict, optional): mmengine data preprocessor config.
        init_cfg (dict, optional): mmengine initialisation config.
    """
    train_module_names = ()  # attributes a phase calls through ``train_module``
    ema_of: Dict[str, str] = {}  # EMA attribute -> the attribute it averages

    def __init__(self, init_from: Optional[Sequence[dict]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.init_from = check_init_from(init_from)
        self._init_from_applied = False
        self.init_from_skipped: Optional[str] = None  # why, when the weights came from elsewhere

    def init_weights(self) -> None:
        """mmengine's initialisation, then the ``init_from`` weights (once)."""
        super().init_weights()
        if self.init_from and not self._init_from_applied:
            loaded = apply_init_from(self, self.init_from, self.ema_of)
            print_log(f'init_from: {loaded} from {[e["checkpoint"] for e in self.init_from]}',
                      logger='current')
        self._init_from_applied = True

    def skip_init_from(self, reason: str) -> None:
        """Leave ``init_from`` unapplied: the weights come from elsewhere (``reason``)."""
        if self.init_from and not self._init_from_applied:
            print_log(f'init_from skipped: {reason}', logger='current')
            self.init_from_skipped = reason
        self._init_from_applied = True

    def set_train_modules(self, handles: Dict[str, nn.Module]) -> None:
        unknown = set(handles) - set(self.train_module_names)
        if unknown:
            raise KeyError(f'{type(self).__name__} has no trainable module(s) {sorted(unknown)}; '
                           f'known: {list(self.train_module_names)}')
        self.__dict__['_train_handles'] = dict(handles)  # plain attribute: not a submodule

    def train_module(self, name: str) -> nn.Module:
        """The DDP / DeepSpeed handle of ``name`` when one is installed, else the module."""
        handles = self.__dict__.get('_train_handles', {})
        return handles[name] if name in handles else getattr(self, name)
