"""Command-line options shared by the tools that sample: ``tools/sample.py``, ``tools/test.py``
and ``tools/benchmark_sampling.py`` declare them once, here, with the ``SamplingSettings``
defaults (``--help`` shows them).

    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_sampling_args(parser)
    settings = sampling_settings(parser.parse_args())
"""
import argparse

from gear.evaluation.sampling import LABEL_MODES, SamplingSettings
from gear.models.ar.sampling import CFG_SCHEDULES
from gear.utils.device import DEVICE_HELP, default_device


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except None / False (nothing to show)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.help is None \
                or '%(default)' in action.help:
            return action.help
        return super()._get_help_string(action)


def add_sampling_args(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """The ``SamplingSettings`` flags (and ``--device`` unless ``device=False``)."""
    d = SamplingSettings()
    group = parser.add_argument_group('sampling')
    group.add_argument('--cfg-scale', type=float, default=d.cfg_scale,
                       help='classifier-free guidance scale (1: off)')
    group.add_argument('--cfg-schedule', choices=CFG_SCHEDULES, default=d.cfg_schedule,
                       help="guidance over the tokens: constant, or linear from 1 (MAR)")
    group.add_argument('--cfg-interval', type=int, default=d.cfg_interval,
                       help='guide tokens 0..k + 1 only, as LlamaGen (-1: every token)')
    group.add_argument('--temperature', type=float, default=d.temperature,
                       help='softmax temperature (0: greedy)')
    group.add_argument('--top-k', type=int, default=d.top_k, help='0: no top-k filter')
    group.add_argument('--top-p', type=float, default=d.top_p, help='1.0: no nucleus filter')
    group.add_argument('--seed', type=int, default=d.seed,
                       help='batch i samples with a generator seeded seed + i')
    group.add_argument('--batch-size', type=int, default=d.batch_size,
                       help='images per batch (part of the seed schedule)')
    group.add_argument('--no-ema', action='store_true', help='sample the online weights')
    group.add_argument('--no-cache', action='store_true', help='no KV cache (reference path)')
    group.add_argument('--compile', action='store_true',
                       help='compile each KV-cache decode step (torch.compile): the same tokens, '
                       'faster after a compile of seconds (once per batch size and settings)')
    if device:
        group.add_argument('--device', default=default_device(), help=DEVICE_HELP)


def add_progress_arg(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no tqdm bars (they go to stderr, on rank 0 only)."""
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bars (tqdm on stderr, rank 0; images/s and ETA)')


def add_label_args(parser: argparse.ArgumentParser, per_class: int = 50) -> None:
    """How many images, of which classes: ``--per-class`` / ``--num-samples`` / ``--labels``."""
    group = parser.add_argument_group('labels')
    count = group.add_mutually_exclusive_group()
    count.add_argument('--per-class', type=int, default=None,
                       help=f'images per class, class by class (default {per_class}: the 50k '
                       'protocol on ImageNet)')
    count.add_argument('--num-samples', type=int, help='N images in all (see --labels)')
    group.add_argument('--labels', choices=LABEL_MODES, default=None,
                       help="labels of --num-samples: 'cycle' 0, 1, .., C - 1, 0, .. (default) "
                       "or 'uniform' at random from --seed (the official gFID protocol); "
                       "--per-class means 'balanced'")


def label_request(args, per_class: int = 50) -> dict:
    """``dict(label_mode, per_class, num_samples)`` from ``add_label_args`` options."""
    if args.num_samples is None:
        if args.labels not in (None, 'balanced'):
            raise SystemExit(f'--labels {args.labels} needs --num-samples')
        return dict(label_mode='balanced', per_class=args.per_class or per_class,
                    num_samples=None)
    if args.labels == 'balanced':
        raise SystemExit('--labels balanced needs --per-class, not --num-samples')
    return dict(label_mode=args.labels or 'cycle', per_class=None, num_samples=args.num_samples)


def sampling_settings(args) -> SamplingSettings:
    """The ``SamplingSettings`` of parsed ``add_sampling_args`` options."""
    if args.compile and args.no_cache:
        raise SystemExit('--compile compiles the KV-cache decode step: it needs the cache '
                         '(drop --no-cache)')
    return SamplingSettings(cfg_scale=args.cfg_scale, cfg_schedule=args.cfg_schedule,
                            cfg_interval=args.cfg_interval, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                            batch_size=args.batch_size, use_ema=not args.no_ema,
                            use_cache=not args.no_cache, compile=args.compile)
