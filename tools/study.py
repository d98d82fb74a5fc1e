"""Run a reproduction study (GEAR vs the baseline over seeds, with ablations), then report it.

    python tools/study.py configs/studies/gear_vq_tiny_fashionmnist.py
    python tools/study.py STUDY --jobs 2                 # stages side by side (default: config)
    python tools/study.py STUDY --dry-run                # print every stage's command
    python tools/study.py STUDY --report-only            # redo study.json / report.md from logs
    python tools/study.py STUDY --cfg-options train_cfg.max_iters=20   # for every stage

Writes ``study.json``, ``report.md`` and PNG plots in the study's work dir. Complete stages are
skipped and unfinished ones resume, so rerunning the same command continues where it stopped.
Progress lines as for tools/pipeline.py (``stage k/N``, ETAs; ``--progress-interval``).
"""
import argparse
import json
import os.path as osp
import resource
import shlex
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from gear.pipeline.chain import run_evaluation, run_pipeline  # noqa: E402
from gear.pipeline.study import load_study  # noqa: E402
from gear.pipeline.study_report import write_report  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Run a gear reproduction study.')
    parser.add_argument('study', help='study config (configs/studies/...)')
    parser.add_argument('--work-dir', help='override the study work dir')
    parser.add_argument('--jobs', type=int, help='stages at once (default: the config\'s jobs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides applied to every stage')
    parser.add_argument('--eval-options', nargs='+', action=DictAction, default={},
                        help='override the evaluate options, e.g. per_class=1')
    parser.add_argument('--progress-interval', type=float, default=30, metavar='S',
                        help='seconds between the progress lines of running stages and '
                             'evaluations (0: only at their start and end; default: 30)')
    parser.add_argument('--skip-eval', action='store_true', help='do not evaluate')
    parser.add_argument('--report-only', action='store_true', help='only write the report')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    study = load_study(args.study, args.work_dir)
    pipeline = study.pipeline()
    jobs = args.jobs or study.jobs
    if args.dry_run:
        print(pipeline.plan(args.cfg_options))
        return
    start = time.monotonic()
    try:
        if not args.report_only:
            run_pipeline(pipeline, extra=args.cfg_options, jobs=jobs,
                         progress_interval=args.progress_interval)
            print(f'[study] training done in {time.monotonic() - start:.0f} s')
            if not args.skip_eval:
                run_evaluation(pipeline, args.eval_options, jobs=jobs,
                               progress_interval=args.progress_interval)
                print(f'[study] evaluation done at {time.monotonic() - start:.0f} s')
    except RuntimeError as e:
        sys.exit(str(e))
    command = ' '.join(['python', 'tools/study.py'] + [shlex.quote(a) for a in (argv or sys.argv[1:])])
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    timing = dict(wall_s=round(time.monotonic() - start, 1), jobs=jobs,
                  cpu_s=round(sum(u.ru_utime + u.ru_stime for u in usage), 1),
                  note='this invocation only (stages complete before it are not counted)')
    previous = osp.join(study.work_dir, 'study.json')
    if args.report_only and osp.isfile(previous):  # keep the run's own command and timing
        with open(previous) as f:
            old = json.load(f)
        command, timing = old.get('command', command), old.get('timing', timing)
    result = write_report(study, command, timing)
    ref = result['speedup']['gear']['loss_ntp']
    print(f'[study] done in {time.monotonic() - start:.0f} s: {osp.join(study.work_dir, "report.md")}')
    print(f'[study] NTP speed-up of the GEAR tokenizer: mean {ref["mean"]} std {ref["std"]} '
          f'over {ref["n"]} of {len(study.seeds)} seeds')


if __name__ == '__main__':
    main()
