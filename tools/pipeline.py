"""Run a pipeline of stages on this machine, then summarise it.

    python tools/pipeline.py configs/pipelines/gear_vq_tiny_fashionmnist.py
    python tools/pipeline.py PIPELINE --stages stage0_warmup stage1_gear   # a subset
    python tools/pipeline.py PIPELINE --cfg-options train_cfg.max_iters=20  # for every stage
    python tools/pipeline.py PIPELINE --stage-options baseline:train_cfg.max_iters=20  # for one
    python tools/pipeline.py PIPELINE --jobs 2                              # 2 stages at once
    python tools/pipeline.py PIPELINE --launcher pytorch --nproc-per-node 8  # each stage on 8
    python tools/pipeline.py PIPELINE --dry-run                             # print the commands
    python tools/pipeline.py PIPELINE --eval-options per_class=1 reference_images=20

Complete stages (with ``final.pth``) are skipped and unfinished ones resume, so rerunning the
same command continues where it stopped. Then evaluates the stages named in the config's
``evaluate`` (skipped when done with the same options) and writes ``summary.json`` and
``curves.png``. Each running stage and evaluation gets a line at its start, at its end and every
``--progress-interval`` seconds (default 30): its step, elapsed time, its ETA, a rough pipeline ETA

    [pipeline] stage 2/4 stage1_gear: iter 120/300 (40%), elapsed 1m05s, stage ETA 49s, pipeline ETA ~6m12s
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from gear.pipeline.chain import load_pipeline, run_evaluation, run_pipeline  # noqa: E402
from gear.pipeline.summary import write_summary  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Run the stages of a gear pipeline.')
    parser.add_argument('pipeline', help='pipeline config (configs/pipelines/...)')
    parser.add_argument('--work-dir', help='override the pipeline work dir')
    parser.add_argument('--stages', nargs='+', help='run only these stages')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides applied to every stage')
    parser.add_argument('--stage-options', nargs='+', action=DictAction, default={},
                        metavar='STAGE:KEY=VALUE',
                        help='config overrides for one stage, after --cfg-options')
    parser.add_argument('--eval-options', nargs='+', action=DictAction, default={},
                        help='override the evaluate options, e.g. per_class=1 reference_images=20')
    parser.add_argument('--jobs', type=int, default=1,
                        help='run up to this many independent stages at once (threads split)')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='pytorch: run each stage under torchrun (--nproc-per-node processes)')
    parser.add_argument('--nproc-per-node', type=int, default=None,
                        help='processes per stage with --launcher pytorch (default: 2)')
    parser.add_argument('--progress-interval', type=float, default=30, metavar='S',
                        help='seconds between the progress lines of running stages and '
                             'evaluations (0: only at their start and end; default: 30)')
    parser.add_argument('--skip-eval', action='store_true', help='do not evaluate')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    if args.launcher == 'none' and args.nproc_per_node not in (None, 1):
        parser.error('--nproc-per-node needs --launcher pytorch')
    nproc = (args.nproc_per_node or 2) if args.launcher == 'pytorch' else 1
    pipeline = load_pipeline(args.pipeline, args.work_dir)
    try:
        pipeline.set_stage_options(args.stage_options)
    except ValueError as e:
        parser.error(str(e))
    if args.dry_run:
        print(pipeline.plan(args.cfg_options, nproc))
        return
    try:
        run_pipeline(pipeline, only=args.stages, extra=args.cfg_options, jobs=args.jobs,
                     nproc_per_node=nproc, progress_interval=args.progress_interval)
        if not args.skip_eval:
            run_evaluation(pipeline, args.eval_options, progress_interval=args.progress_interval)
    except RuntimeError as e:
        sys.exit(str(e))
    summary = write_summary(pipeline)
    print(f'[pipeline] done: {osp.join(pipeline.work_dir, "summary.json")}')
    for role, values in summary.get('comparison', {}).get('final_loss_ntp', {}).items():
        print(f'[pipeline] final next-token loss, {role}: {values}')
    for metric, values in summary.get('evaluation', {}).get('comparison', {}).items():
        if metric in ('fid', 'precision', 'recall', 'rfid', 'psnr') or '/cka_' in metric:
            print(f'[pipeline] {metric}: {values}')


if __name__ == '__main__':
    main()
