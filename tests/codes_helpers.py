"""What the pre-extracted codes tests share: the shipped codes config on a few real
Fashion-MNIST images, and the earlier stage's weights file it reads its tokenizer from.

The weights file is a real gear weights file with the stage-0 / stage-1 layout that
``init_from`` reads (``tokenizer.*`` live, ``tokenizer_ema.module.*`` EMA) of the config's
tokenizer, initialised from seeds instead of trained: what matters to the codes is which
weights are loaded, not how good they are. Two seeds give two tokenizers (stale codes).
"""
import numpy as np
import torch
from mmengine.config import Config

from gear.datasets.codes_store import META, array_specs, read_meta
from gear.engine.config_check import read_config
from gear.registry import TOKENIZERS
from gear.utils.checkpoint import save_weights

CODES_CONFIG = 'configs/ar/baseline_vq_tiny_fashionmnist_codes.py'


def stage_weights(path, seed: int) -> str:
    """A stage weights file whose live and EMA tokenizers are seeded ``seed``, ``seed + 1``."""
    cfg = Config.fromfile(CODES_CONFIG).model.tokenizer
    state = {}
    for prefix, s in (('tokenizer', seed), ('tokenizer_ema.module', seed + 1)):
        torch.manual_seed(s)
        state.update({f'{prefix}.{k}': v for k, v in TOKENIZERS.build(cfg).state_dict().items()})
    save_weights(state, str(path))
    return str(path)


def codes_options(stage: str, root, num_samples: int) -> dict:
    """The shipped codes config on the first ``num_samples`` train images, codes at ``root``."""
    return {'model.init_from.0.checkpoint': str(stage),
            'train_dataloader.dataset.root': str(root),
            'train_dataloader.dataset.source.num_samples': num_samples}


def cli_options(options: dict) -> list:
    return [f'{k}={v}' for k, v in options.items()]


def codes_cfg(stage: str, root, num_samples: int) -> Config:
    return read_config(CODES_CONFIG, codes_options(stage, root, num_samples))


def read_codes(root) -> dict:
    """meta.json and every array of complete codes at ``root`` (loaded, not mapped)."""
    meta = read_meta(str(root))
    arrays = {name: np.load(f'{root}/{spec["file"]}') for name, spec in array_specs(meta).items()}
    return dict(meta=meta, **arrays)


def assert_same_codes(a, b) -> None:
    """Two codes directories hold the same meta (keys, shapes) and bit-identical arrays."""
    a, b = read_codes(a), read_codes(b)
    assert a['meta'] == b['meta'], f'{META} differs'
    for name in a:
        if name != 'meta':
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
