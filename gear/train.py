"""Train any gear stage from its config: the one train entry point.

    python -m gear.train configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py
    python -m gear.train CONFIG --work-dir work_dirs/x --cfg-options train_cfg.max_iters=10
    python -m gear.train CONFIG --resume            # newest complete checkpoint in the work dir
    torchrun --nproc_per_node 8 -m gear.train CONFIG --launcher pytorch

``tools/train.py``, the pipeline (``gear.pipeline``) and the SLURM trainer all call
``build_parser`` / ``main`` here. Parse, load, override, check, build the runner, train; no
training logic lives here. A relative config path not found from the working directory is
looked up in the installed package (``gear.utils.config_path``).

A run that stops early says how to continue it, with the command that resumes it: on SIGINT /
SIGTERM (a checkpoint at the step boundary, exit 130 / 143: ``SignalHook``), on a second Ctrl-C
(exit 130 at once, nothing saved) and when a checkpoint cannot be written (a full disk: the file,
the errno, and the complete checkpoint that ``--resume`` will use; exit 1).
"""
import argparse
import errno
import logging
import os
import os.path as osp
import shlex
import signal
import sys
from typing import List, Optional

import torch.distributed as dist

from mmengine.config import Config, DictAction

from gear.engine import check_config
from gear.engine.config_check import ConfigError, read_config
from gear.engine.hooks.signals import TrainingInterrupted
from gear.engine.runner import find_latest_checkpoint
from gear.registry import RUNNERS
from gear.utils.checkpoint import FileWriteError
from gear.utils.config_path import find_config
from gear.utils.distributed import close_process_group, describe_collective_error


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


def resume_command(argv: List[str], work_dir: str) -> str:
    """The command that resumes this run: the same script, config, launcher and
    ``--cfg-options``, with ``--work-dir`` and ``--resume`` (the newest complete checkpoint)."""
    args = build_parser().parse_args(argv)
    script = sys.argv[0] if sys.argv else ''
    if osp.basename(script) != 'train.py' or osp.abspath(script) == osp.abspath(__file__):
        script = '-m gear.train'  # python -m gear.train, or gear.train.main called in-process
    world, local = int(os.environ.get('WORLD_SIZE', 1)), os.environ.get('LOCAL_WORLD_SIZE')
    if world > 1:
        launch = ('torchrun --nproc_per_node ' + local if local and int(local) == world
                  else 'torchrun <your launch options>')
    else:
        launch = 'python'
    words = [args.config, '--work-dir', work_dir]
    if args.launcher != 'none':
        words += ['--launcher', args.launcher]
    words.append('--resume')
    if '--cfg-options' in argv:  # as typed: DictAction's parsed values do not print back
        start = argv.index('--cfg-options') + 1
        end = next((i for i in range(start, len(argv)) if argv[i].startswith('--')), len(argv))
        words += ['--cfg-options', *argv[start:end]]
    return f'{launch} {script} ' + ' '.join(shlex.quote(w) for w in words)


_FIXES = {errno.ENOSPC: 'free space', errno.EDQUOT: 'free space (a disk quota is full)',
          errno.EFBIG: 'raise the file size limit (ulimit -f)'}


def _resume_point(work_dir: str) -> str:
    latest = find_latest_checkpoint(work_dir)
    return (f'the newest complete checkpoint is {latest} and --resume will use it' if latest
            else 'there is no complete checkpoint yet: --resume starts at step 0')


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        cfg = load_config(args)
        check_config(cfg)
    except ConfigError as e:
        sys.exit(f'config error in {args.config}: {e}')
    cfg.setdefault('runner_type', 'GearRunner')
    owns_group = not (dist.is_available() and dist.is_initialized())  # else the caller's
    runner = RUNNERS.build(cfg)
    try:
        runner.train()
        if owns_group:
            close_process_group()
    except ConfigError as e:  # found once the run meets its checkpoint (--resume)
        sys.exit(f'config error in {args.config}: {e}')
    except TrainingInterrupted as e:  # a signal: saved at the step boundary (SignalHook)
        if runner.rank == 0:
            runner.logger.warning(
                f'{e.signal_name}: training stopped at step {e.step}; {e.checkpoint} is '
                f'complete. Resume with:\n  {resume_command(argv, cfg.work_dir)}')
        if os.environ.get('TORCHELASTIC_RUN_ID') is not None:
            # torchrun SIGTERMs the other workers as soon as one exits; during interpreter
            # finalization (seconds, with the default handlers back) that kills them (-15)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code)
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: out at once, nothing saved at this step
        if runner.rank == 0:
            runner.logger.warning(
                f'SIGINT twice: stopped at once without a checkpoint of this step; '
                f'{_resume_point(cfg.work_dir)}:\n  {resume_command(argv, cfg.work_dir)}')
        sys.exit(128 + signal.SIGINT)
    except FileWriteError as e:  # a full disk, a quota: the file, the errno, what to do
        fix = _FIXES.get(e.errno, 'fix the cause')
        message = (f'{e.strerror}; {_resume_point(cfg.work_dir)}; {fix} and resume:\n  '
                   f'{resume_command(argv, cfg.work_dir)}')
        runner.logger.error(message)
        raise SystemExit(f'error: {message}') from e
    except Exception as e:  # a failed collective: say which rank, which operation, where
        note = describe_collective_error(e)
        if note is None:
            raise
        runner.logger.error(note)
        raise RuntimeError(note) from e


if __name__ == '__main__':
    main()
