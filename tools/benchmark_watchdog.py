"""The per-step cost of the non-finite watchdog, measured side by side in one training run.

    python tools/benchmark_watchdog.py configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py \
        --steps 200 --out bench/watchdog.json
    python tools/benchmark_watchdog.py CONFIG --steps 400 --policy skip --out watchdog_skip.json

The config's runner trains as ``tools/train.py`` would (real data, every loss term, its log
hook), without validation, checkpoints, visualisation or export. After ``--warmup`` steps,
blocks of ``--block`` steps alternate between the watchdog on (``--policy``: ``stop``, the
default, or ``skip``) and off (``nonfinite=None``), switched in place by
``LogSyncHook.set_policy`` at the block boundaries, which are log windows (the logger interval
is set to the block), so each block holds one flush. A block's time runs from the end of the
previous block to the end of its last step, with ``torch.cuda.synchronize`` at both ends on a
GPU; seconds per step = block time / block length. The JSON holds every block and, per mode,
the median over its blocks; ``ratio`` = on / off of those medians, and ``paired_ratio`` the
median of on / off over adjacent pairs of blocks (robust to a load that drifts during the
run). Interleaving puts both modes under the same machine load; on a shared CPU the blocks are
still noisy: use short blocks and many of them, and compare medians, not one block.
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from gear.engine import check_config  # noqa: E402
from gear.engine.hooks.log_sync import LogSyncHook  # noqa: E402
from gear.registry import RUNNERS  # noqa: E402
from gear.train import build_parser as train_parser  # noqa: E402
from gear.train import load_config  # noqa: E402
from gear.utils.checkpoint import atomic_write_bytes  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Per-step cost of the non-finite watchdog.')
    parser.add_argument('config', help='a stage 0, 1 or 2 config')
    parser.add_argument('--steps', type=int, default=200, help='timed steps (both modes)')
    parser.add_argument('--block', type=int, default=20,
                        help='steps per block (one log window); the modes alternate by block')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps first (default: one block)')
    parser.add_argument('--policy', choices=['stop', 'skip'], default='stop',
                        help='the watchdog policy timed against nonfinite=None')
    parser.add_argument('--max-consecutive-skips', type=int, default=3,
                        help="nonfinite.max_consecutive_skips for --policy skip")
    parser.add_argument('--work-dir', help='where the run writes its log (default: a temp dir)')
    parser.add_argument('--out', default='benchmark_watchdog.json', help='JSON file to write')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='config overrides (key=value), applied last')
    return parser


class BlockTimer(Hook):
    """Times each block of steps and switches the watchdog for the next one."""
    priority = 'LOWEST'  # after the block's last flush (LogSyncHook, HIGHEST)

    def __init__(self, log_sync: LogSyncHook, policies: dict, warmup: int, block: int):
        self.log_sync, self.policies, self.warmup, self.block = log_sync, policies, warmup, block
        self.modes = list(policies)  # ['on', 'off']: on first, then alternating
        self.blocks, self._start = [], None

    def _now(self, runner) -> float:
        if runner.model is not None and next(runner.model.parameters()).is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1 - self.warmup  # timed steps finished
        if done < 0 or done % self.block:
            return
        now = self._now(runner)
        if done > 0:
            mode = self.modes[(done // self.block - 1) % 2]
            policy = self.log_sync.policy  # what the block ran with, read back from the hook
            self.blocks.append(dict(mode=mode, watchdog=policy.policy if policy else None,
                                    seconds_per_step=(now - self._start) / self.block))
        next_mode = self.modes[(done // self.block) % 2]
        self.log_sync.set_policy(self.policies[next_mode])
        self._start = now


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.steps < 2 * args.block or args.block < 1:
        raise SystemExit(f'--steps {args.steps} must hold at least two blocks of --block '
                         f'{args.block} (one per mode)')
    blocks = args.steps // args.block
    blocks += blocks % 2  # as many blocks of each mode
    warmup = args.block if args.warmup is None else -(-args.warmup // args.block) * args.block
    on = (dict(policy='stop') if args.policy == 'stop'
          else dict(policy='skip', max_consecutive_skips=args.max_consecutive_skips))
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='benchmark_watchdog_')
    length = warmup + blocks * args.block
    options = [f'train_cfg.max_iters={length}', f'train_cfg.val_interval={length + 1}',
               f'default_hooks.logger.interval={args.block}',
               f'log_processor.window_size={args.block}', 'default_hooks.checkpoint=None',
               'default_hooks.export_weights=None', 'custom_hooks=[]', *args.cfg_options]
    cfg = load_config(train_parser().parse_args(
        [args.config, '--work-dir', work_dir, '--cfg-options', *options]))
    cfg.nonfinite = on
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # no validation at all
    check_config(cfg)
    runner = RUNNERS.build(cfg)
    log_sync = next((h for h in runner.hooks if isinstance(h, LogSyncHook)), None)
    if log_sync is None:
        raise SystemExit(f'{args.config}: no LogSyncHook (default_hooks.log_sync): the watchdog '
                         'runs there')
    timer = BlockTimer(log_sync, dict(on=on, off=None), warmup, args.block)
    runner.register_hook(timer)
    runner.train()
    medians = {m: statistics.median(b['seconds_per_step'] for b in timer.blocks
                                    if b['mode'] == m) for m in ('on', 'off')}
    result = dict(
        config=args.config, policy=on, device=str(next(runner.model.parameters()).device),
        host=platform.node(), torch=torch.__version__, warmup_steps=warmup,
        block_steps=args.block, timed_steps=blocks * args.block, blocks=timer.blocks,
        median_seconds_per_step=medians, ratio=medians['on'] / medians['off'],
        paired_ratio=statistics.median(
            a['seconds_per_step'] / b['seconds_per_step']
            for a, b in zip(timer.blocks[::2], timer.blocks[1::2])),
        overhead_ms_per_step=1e3 * (medians['on'] - medians['off']))
    atomic_write_bytes((json.dumps(result, indent=2) + '\n').encode(), args.out)
    print(f"watchdog {on['policy']}: {1e3 * medians['on']:.2f} ms/step, off: "
          f"{1e3 * medians['off']:.2f} ms/step, ratio {result['ratio']:.4f} (paired "
          f"{result['paired_ratio']:.4f}) -> {args.out}")
    return result


if __name__ == '__main__':
    main()
