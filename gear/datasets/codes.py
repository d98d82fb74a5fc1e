"""``CodesDataset``: stage 2 and the baseline read pre-extracted codes instead of images.

Items are ``dict(tokens=LongTensor (L,), label=int, teacher_maps={teacher: FloatTensor
(C, h, w)}, view=int)``: one stored view of item ``idx``, drawn uniformly from ``views`` with the global
``torch`` RNG (one ``torch.randint`` per item when there are several views, none otherwise), as
gear's random transforms draw: reproducible under the DataLoader's per-worker seeding and, with
``RNGStateHook``, across resume. ``FrozenTokenizerAR`` takes such batches in place of images and
skips its online tokenizer and teacher passes.

The arrays are memory maps, opened in each process on first use (a DataLoader worker opens its
own; pickling the dataset never copies them). The layout and the keys are in ``codes_store.py``;
the tokenizer and teachers are checked against the model when training starts
(``CodesCheckHook``), the dataset config here, when the dataset is built.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from gear.registry import DATASETS

from .codes_store import CodesError, check_source, describe, locate, open_arrays


@DATASETS.register_module()
class CodesDataset(Dataset):
    """Pre-extracted tokens, labels and teacher features (``tools/extract_codes.py``).

    Args:
        root (str): the codes directory (extracted complete; ``{root}.partial`` is refused).
        source (dict): the dataset config the codes were extracted from (pipeline included);
            it must equal the one in ``meta.json``. A codes config writes the online config's
            ``{{_base_.train_dataloader.dataset}}`` here, so it says what the codes stand for and
            ``tools/extract_codes.py`` reads it.
        views (list[str], optional): the stored views to draw from (default: all, e.g.
            ``['orig', 'flip']``: a random horizontal flip); ``['orig']`` gives the images
            exactly as the online pipeline does.
    """

    def __init__(self, root: str, source: dict, views: Optional[Sequence[str]] = None):
        self.root = str(root)
        self.meta = locate(self.root)
        check_source(self.meta, source, self.root, where='CodesDataset.source')
        stored = list(self.meta['views'])
        views = stored if views is None else list(views)
        unknown = [v for v in views if v not in stored]
        if unknown or not views:
            raise CodesError(f'CodesDataset.views: {unknown or views} not among the views of '
                             f'{self.root}: {stored}')
        self.view_ids = [stored.index(v) for v in views]
        self.teacher_names = sorted(self.meta['teachers'])
        self.metainfo = dict(self.meta.get('metainfo') or {})
        self._arrays = None

    @staticmethod
    def config_error(root=None, source=None, views=None) -> Optional[str]:
        """Argument checks before anything is read (gear/engine/config_check.py)."""
        if not isinstance(source, dict) or 'type' not in source:
            return f'source: the dataset config the codes come from, got {source!r}'
        if views is not None and (isinstance(views, str)
                                  or not all(isinstance(v, str) for v in views)):
            return f"views: a list of view names, e.g. ['orig'], got {views!r}"
        return None

    def __len__(self) -> int:
        return int(self.meta['num_items'])

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _arrays=None)  # each process maps the files itself

    @property
    def arrays(self):
        if self._arrays is None:
            self._arrays = open_arrays(self.root, self.meta, mode='r')
        return self._arrays

    def __getitem__(self, idx: int) -> dict:
        if not -len(self) <= idx < len(self):
            raise IndexError(f'index {idx} out of range for CodesDataset {self.root} of length '
                             f'{len(self)}')
        if len(self.view_ids) > 1:
            view = self.view_ids[int(torch.randint(len(self.view_ids), (1,)).item())]
        else:
            view = self.view_ids[0]
        a = self.arrays
        tokens = torch.from_numpy(a['indices'][idx, view].astype(np.int64))  # (L,)
        maps = {n: torch.from_numpy(np.array(a[f'teacher/{n}'][idx, view], dtype=np.float32))
                for n in self.teacher_names}  # {name: (C, h, w)}
        return dict(tokens=tokens, label=int(a['labels'][idx]), teacher_maps=maps, view=view)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.root}: {describe(self.meta)})'
