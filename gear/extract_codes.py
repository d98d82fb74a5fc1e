"""Encode a stage-2 / baseline config's dataset once with its frozen tokenizer (docs/codes.md):
the entry point of ``python -m gear.extract_codes`` (``tools/extract_codes.py`` is a shim; a
pipeline's ``kind='codes'`` stage runs it).

    python -m gear.extract_codes configs/ar/baseline_vq_tiny_fashionmnist_codes.py
    python -m gear.extract_codes configs/ar/baseline_vq_tiny_fashionmnist.py --out DIR
    torchrun --nproc-per-node 2 -m gear.extract_codes CONFIG     # the items sharded over ranks

Writes the tokens of each item and of its horizontal flip (``--ten-crop``: LlamaGen's ten
crops), the labels and the teachers' feature maps into DIR (a codes config's
``train_dataloader.dataset.root``), keyed by the tokenizer's weights hash, the dataset config
and the views. Interrupted (any way, SIGKILL included), it leaves ``DIR.partial``; the same
command completes it. Train from the codes with the codes config: ``tools/train.py CONFIG``.
"""
import argparse
import sys

from mmengine.config import DictAction

from gear.apis.extract_codes import extract_codes
from gear.datasets.codes_store import FEATURE_DTYPES, CodesError
from gear.engine.config_check import ConfigError, read_config
from gear.utils.checkpoint import CheckpointError
from gear.utils.config_path import find_config
from gear.utils.device import DEVICE_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Extract the codes (tokens, labels, teacher features) of a config\'s '
                    'dataset with its frozen tokenizer.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('config', help='a stage-2 / baseline config (FrozenTokenizerAR)')
    parser.add_argument('--out', help='output directory; None: the one a CodesDataset config '
                        'names (train_dataloader.dataset.root)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.init_from.0.checkpoint=PATH')
    parser.add_argument('--split', choices=['train', 'val'], default='train',
                        help='the dataloader whose dataset is encoded')
    parser.add_argument('--no-ema', action='store_true',
                        help="the earlier stage's live tokenizer instead of its EMA")
    parser.add_argument('--ten-crop', action='store_true',
                        help="LlamaGen's ten crops of the item prepared at --crop-range times "
                             'the resolution, instead of (image, flip)')
    parser.add_argument('--crop-range', type=float, default=1.1, help='ten-crop enlargement')
    parser.add_argument('--batch-size', type=int, default=64,
                        help='items per chunk (one batch; a rerun must give the same)')
    parser.add_argument('--num-workers', type=int, default=None,
                        help="DataLoader workers; None: the config's dataloader's")
    parser.add_argument('--feature-dtype', choices=FEATURE_DTYPES, default='float32',
                        help='dtype of the stored teacher feature maps')
    parser.add_argument('--device', default=None, help=DEVICE_HELP)
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        cfg = read_config(find_config(args.config), args.cfg_options)
        extract_codes(cfg, args.out, split=args.split, use_ema=not args.no_ema,
                      ten_crop=args.ten_crop, crop_range=args.crop_range,
                      batch_size=args.batch_size, device=args.device,
                      num_workers=args.num_workers, feature_dtype=args.feature_dtype,
                      progress=not args.no_progress)
    except (CodesError, ConfigError, CheckpointError) as e:
        sys.exit(f'extract_codes: {e}')


if __name__ == '__main__':
    main()
