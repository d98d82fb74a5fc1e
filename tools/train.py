"""Train any gear stage from its config.

    python tools/train.py configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py
    python tools/train.py CONFIG --work-dir work_dirs/x --cfg-options train_cfg.max_iters=10
    python tools/train.py CONFIG --resume            # newest complete checkpoint in the work dir
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch

Parse, load, override, check, build the runner, train. No training logic lives here.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mmengine.config import Config, DictAction  # noqa: E402

from gear.engine import check_config  # noqa: E402
from gear.engine.config_check import ConfigError, read_config  # noqa: E402
from gear.registry import RUNNERS  # noqa: E402
from gear.utils.distributed import describe_collective_error  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a gear stage.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from the newest checkpoint in the work dir, or from the '
                        'given checkpoint file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for multi-process training')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def load_config(args) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = read_config(args.config, args.cfg_options)  # helpers dropped, overrides checked
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args)
    try:
        check_config(cfg)
    except ConfigError as e:
        sys.exit(f'config error in {args.config}: {e}')
    cfg.setdefault('runner_type', 'GearRunner')
    runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except Exception as e:  # a failed collective: say which rank, which operation, where
        note = describe_collective_error(e)
        if note is None:
            raise
        runner.logger.error(note)
        raise RuntimeError(note) from e


if __name__ == '__main__':
    main()
