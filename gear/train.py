"""Train any gear stage from its config: the one train entry point.

    python -m gear.train configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py
    python -m gear.train CONFIG --work-dir work_dirs/x --cfg-options train_cfg.max_iters=10
    python -m gear.train CONFIG --resume            # newest complete checkpoint in the work dir
    torchrun --nproc_per_node 8 -m gear.train CONFIG --launcher pytorch

``tools/train.py``, the pipeline (``gear.pipeline``) and the SLURM trainer all call
``build_parser`` / ``main`` here. Parse, load, override, check, build the runner, train; no
training logic lives here. A relative config path not found from the working directory is
looked up in the installed package (``gear.utils.config_path``).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction

from gear.engine import check_config
from gear.engine.config_check import ConfigError, read_config
from gear.registry import RUNNERS
from gear.utils.config_path import find_config
from gear.utils.distributed import describe_collective_error


def add_train_arguments(parser: argparse.ArgumentParser, launcher: bool = True,
                        config_help: str = 'config file path',
                        work_dir_help: str = 'where logs and checkpoints go '
                                             '(default: work_dirs/<config name>)') -> None:
    """The options every way of training shares. ``launcher=False`` leaves out what a launcher
    decides itself (``--resume``, ``--launcher``, ``--local-rank``) and makes the config
    optional, as ``slurm/launch.py`` needs."""
    if launcher:
        parser.add_argument('config', help=config_help)
    else:
        parser.add_argument('config', nargs='?', default=None, help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=10')
    if launcher:
        parser.add_argument('--resume', nargs='?', const='auto', default=None,
                            help='resume from the newest checkpoint in the work dir, or from '
                            'the given checkpoint file')
        parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                            default='none', help='job launcher for multi-process training')
        parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m gear.train', description='Train a gear stage.')
    add_train_arguments(parser)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the command line applied (overrides, work dir, resume);
    helpers dropped and overrides checked (``read_config``)."""
    cfg = read_config(find_config(args.config), args.cfg_options)
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


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        cfg = load_config(args)
        check_config(cfg)
    except ConfigError as e:
        sys.exit(f'config error in {args.config}: {e}')
    cfg.setdefault('runner_type', 'GearRunner')
    runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except ConfigError as e:  # found once the run meets its checkpoint (--resume)
        sys.exit(f'config error in {args.config}: {e}')
    except Exception as e:  # a failed collective: say which rank, which operation, where
        note = describe_collective_error(e)
        if note is None:
            raise
        runner.logger.error(note)
        raise RuntimeError(note) from e


if __name__ == '__main__':
    main()
