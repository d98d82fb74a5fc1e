"""Which real images an evaluation compares a checkpoint with, or a clear refusal.

In order, the first that applies:

1. ``reference``: a dataset config file (its ``test_dataloader`` / ``val_dataloader`` dataset, or
   a top-level ``dataset``), a folder of images, or an ADM reference batch ``.npz`` such as
   ``VIRTUAL_imagenet256_labeled.npz`` (FID statistics from the file; the other parts then need
   a dataset from 2 or 3);
2. ``dataset``: a dataset config given by the caller (``tools/test.py CONFIG CKPT`` passes the
   config's test, else val, dataset);
3. the dataset the checkpoint was trained on: ``arch['data']`` of a weights file (its test, else
   val split), which ``ExportWeightsHook`` and ``publish_model`` record.

Otherwise ``NoReferenceError``: an FID against images of another dataset is never computed.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch
from mmengine.config import Config


class NoReferenceError(ValueError):
    """No real images to evaluate against; the message says what to give."""


GIVE_ONE = ('give one: --reference DATASET_CONFIG.py (its test or val dataset, e.g. '
            'configs/_base_/datasets/imagenet.py), --reference IMAGE_FOLDER, or --reference '
            'VIRTUAL_imagenet256_labeled.npz (an ADM reference batch); or put the run\'s CONFIG '
            'before the checkpoint')


@dataclass
class RealData:
    """The real side of an evaluation.

    Attributes:
        dataset: a DATASETS config of the real images (tokenizer metrics, the analysis batch and,
            without ``npz``, the FID reference), or None.
        npz: path of an ADM reference batch whose statistics are the FID reference, or None.
        source: where it came from: 'reference', 'dataset' or 'checkpoint'.
    """
    dataset: Optional[dict]
    npz: Optional[str]
    source: str

    def to_dict(self) -> dict:
        return dict(dataset=self.dataset, npz=osp.abspath(self.npz) if self.npz else None,
                    source=self.source)


def recorded_data(checkpoint: str) -> dict:
    """``arch['data']`` of a gear weights file (``{}`` for other files or older exports)."""
    try:
        ckpt = torch.load(checkpoint, map_location='cpu', mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 -- a training checkpoint, or unreadable: load_model says why
        return {}
    arch = ckpt.get('arch') if isinstance(ckpt, dict) else None
    return dict((arch or {}).get('data') or {})


def dataset_of_config(path: str) -> dict:
    """The test (else val) dataset of a config file, or its top-level ``dataset``."""
    cfg = Config.fromfile(path)
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset'):
            return loader['dataset'].to_dict()
    if cfg.get('dataset'):
        return cfg['dataset'].to_dict()
    raise NoReferenceError(f'reference config {path} has no test_dataloader.dataset, '
                           'val_dataloader.dataset or dataset entry')


def resolve_real_data(checkpoint: str, reference: Optional[str] = None,
                      dataset: Optional[dict] = None, resolution: int = 256) -> RealData:
    """The ``RealData`` of evaluating ``checkpoint`` (order in the module docstring).

    ``resolution``: the model's image side, for an image-folder reference.
    """
    fallback = dict(dataset) if dataset else None
    source = 'dataset' if fallback else 'checkpoint'
    if fallback is None:
        data = recorded_data(checkpoint)
        fallback = data.get('test') or data.get('val')
    if reference is not None:
        if reference.endswith('.npz'):
            if not osp.isfile(reference):
                raise NoReferenceError(f'reference batch {reference} not found')
            return RealData(fallback, reference, 'reference')
        if osp.isdir(reference):
            return RealData(dict(type='ImageFolder', data_root=reference, resolution=resolution,
                                 label_from='none'), None, 'reference')
        if reference.endswith('.py') and osp.isfile(reference):
            return RealData(dataset_of_config(reference), None, 'reference')
        raise NoReferenceError(f'--reference {reference}: not a dataset config (.py), an image '
                               'folder or an ADM .npz that exists; ' + GIVE_ONE)
    if fallback is None:
        raise NoReferenceError(
            f'{checkpoint} records no dataset (arch["data"]: a converted or older file), so '
            'there are no real images to compare with; ' + GIVE_ONE)
    return RealData(fallback, None, source)
