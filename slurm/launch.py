"""Submit a gear pipeline to SLURM: one job per stage, each waiting for the stages it reads.

    python slurm/launch.py --nodes 4                  # the ImageNet pipeline, 4 nodes x 8 GPUs
    python slurm/launch.py --nodes 4 --dry-run        # print resources, commands, dependencies
    python slurm/launch.py --stages stage1_gear stage2_vqonly --time 1440
    python slurm/launch.py --pipeline configs/pipelines/gear_vq_tiny_fashionmnist.py --cluster local
    python slurm/launch.py configs/gear/gear_vq_l_imagenet.py --work-dir work_dirs/x   # one config

Each stage runs ``gear.train`` in ``{work_dir}/{stage}`` (``gear.pipeline.slurm_trainer``); a stage
that reads an earlier stage's ``final.pth`` gets ``--dependency=afterok:<job id>``. Complete stages
(``final.pth`` exists) are skipped and stages with a queued or running job are not submitted
again (their dependents wait on that job), so rerunning the same command continues a pipeline;
every job resumes from the newest checkpoint in its work dir; a job that times out or is
preempted requeues itself (at most ``--max-requeues`` times). Logs:
``{work_dir}/slurm/{stage}/{job_id}_0_log.{out,err}``. Defaults come from ``slurm/cluster.py``.
The options of ``python -m gear.train`` (``--work-dir``, ``--cfg-options``) mean the same here
(``gear.train.add_train_arguments``); jobs run in the directory they were submitted from. The
global batch is the config's ``global_batch_size`` whatever the number of nodes: each task loads
``global_batch_size / world size`` (``--dry-run`` shows both; a global batch that does not divide
over the tasks is refused before anything is submitted).
"""
import argparse
import getpass
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a checkout without install

import gear  # noqa: E402
from gear.engine.batch import GLOBAL_BATCH_KEY, per_rank_batch  # noqa: E402
from gear.engine.config_check import read_config  # noqa: E402
from gear.extract_codes import build_parser as build_codes_parser  # noqa: E402
from gear.pipeline.chain import Pipeline, Stage, load_pipeline  # noqa: E402
from gear.pipeline.slurm_trainer import Trainer  # noqa: E402
from gear.train import add_train_arguments, build_parser as build_train_parser  # noqa: E402
from gear.utils.config_path import find_config  # noqa: E402
from slurm.cluster import CLUSTERS, get_cluster, tasks_per_node  # noqa: E402

GEAR_ROOT = osp.dirname(osp.dirname(osp.abspath(gear.__file__)))  # where ``import gear`` found it

DEFAULT_PIPELINE = 'configs/pipelines/gear_vq_l_imagenet.py'


def build_parser() -> argparse.ArgumentParser:
    """The train parser (``--work-dir``, ``--cfg-options``) plus the SLURM options."""
    parser = argparse.ArgumentParser(description='Submit gear stages as dependent SLURM jobs.')
    add_train_arguments(  # jobs always resume; the launcher follows the tasks
        parser, launcher=False,
        config_help='submit this one config as a single job instead of --pipeline',
        work_dir_help=("the pipeline's work dir (default: its config's work_dir); with a "
                       'config, the run dir (default: work_dirs/<config name>)'))
    parser.add_argument('--pipeline', default=DEFAULT_PIPELINE, help='pipeline config')
    parser.add_argument('--stages', nargs='+', help='submit only these stages')
    parser.add_argument('--cluster', choices=sorted(CLUSTERS),
                        help='defaults from slurm/cluster.py (else $GEAR_SLURM_CLUSTER or default)')
    parser.add_argument('--nodes', type=int, default=1, help='nodes per job')
    parser.add_argument('--gpus-per-node', type=int, help='GPUs (= tasks) per node')
    parser.add_argument('--tasks-per-node', type=int,
                        help='processes per node (default: one per GPU, one on a CPU node)')
    parser.add_argument('--cpus-per-task', type=int, help='CPU cores per task')
    parser.add_argument('--partition', help='SLURM partition')
    parser.add_argument('--time', type=int, help='time limit of each job, in minutes')
    parser.add_argument('--max-requeues', type=int, help='requeues per stage (timeout/preemption)')
    parser.add_argument('--dry-run', action='store_true', help='print the jobs; submit nothing')
    return parser


@dataclass
class Job:
    """One stage to submit: its train arguments, submitit parameters and dependencies."""
    stage: Stage
    argv: List[str]
    work_dir: str
    folder: str
    params: Dict[str, object]
    after: List[str] = field(default_factory=list)
    global_batch: Optional[int] = None  # the config's global_batch_size (with --cfg-options)
    rank_batch: Optional[int] = None  # what each task loads: global_batch / world size


def resolve(args) -> dict:
    """The cluster profile with the command line's overrides applied."""
    res = get_cluster(args.cluster)
    for key, value in (('gpus_per_node', args.gpus_per_node), ('partition', args.partition),
                       ('cpus_per_task', args.cpus_per_task), ('time_min', args.time),
                       ('max_requeues', args.max_requeues)):
        if value is not None:
            res[key] = value
    res['nodes'] = args.nodes
    res['tasks_per_node'] = tasks_per_node(res['gpus_per_node'],
                                           getattr(args, 'tasks_per_node', None))
    return res


def executor_params(stage: Stage, res: dict) -> Dict[str, object]:
    """submitit ``update_parameters`` keywords for one stage (dependencies added at submission)."""
    params = dict(name=f'gear-{stage.name}', nodes=res['nodes'],
                  tasks_per_node=res['tasks_per_node'], cpus_per_task=res['cpus_per_task'],
                  timeout_min=res['time_min'], slurm_signal_delay_s=res['signal_delay_s'])
    if res['gpus_per_node']:
        params['gpus_per_node'] = res['gpus_per_node']
    if res['partition']:
        params['slurm_partition'] = res['partition']
    if res['mem_gb'] is not None:
        params['mem_gb'] = res['mem_gb']
    return params


def get_pipeline(args) -> Pipeline:
    """The pipeline to submit: ``--pipeline``, or a single ``config`` as a one-stage pipeline."""
    if args.config is None:
        return load_pipeline(args.pipeline, args.work_dir)
    name = osp.splitext(osp.basename(args.config))[0]
    run_dir = osp.abspath(args.work_dir or osp.join('work_dirs', name))
    return Pipeline(work_dir=osp.dirname(run_dir), source=args.config,
                    stages=[Stage(name=osp.basename(run_dir), config=osp.abspath(find_config(args.config)))])


def active_jobs() -> Dict[str, str]:
    """Work dir -> job id of this user's queued or running gear jobs (from their comment)."""
    try:
        out = subprocess.run(['squeue', '-h', '-u', getpass.getuser(), '-o', '%i|%k'],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rows = [line.split('|', 1) for line in out.splitlines() if '|' in line]
    return {comment.strip(): job_id.strip() for job_id, comment in rows
            if comment.startswith('gear:')}


def batch_of(stage: Stage, train_args, res: dict):
    """(global batch, per-task batch) of a stage's config with its ``--cfg-options`` on
    ``res``'s world size; (None, None) for a config without ``global_batch_size``.

    Raises:
        ValueError: (a ``ConfigError``) if an override names a key that nothing reads, or the
            global batch does not divide over the tasks; the message names the stage.
    """
    world_size = res['nodes'] * res['tasks_per_node']
    try:
        cfg = read_config(train_args.config, train_args.cfg_options)
        global_batch = cfg.get(GLOBAL_BATCH_KEY)
        if global_batch is None:
            return None, None
        return global_batch, per_rank_batch(global_batch, world_size)
    except ValueError as e:
        raise ValueError(f'{stage.name} ({stage.config}): {e}') from e


def plan(pipeline: Pipeline, res: dict, only: Optional[List[str]] = None,
         extra: Optional[dict] = None, active: Optional[Dict[str, str]] = None) -> List[Job]:
    """The jobs to submit, in pipeline order: complete stages skipped, their edges dropped.

    Args:
        pipeline: The pipeline.
        res: The resolved cluster resources (:func:`resolve`).
        only: Submit only these stages.
        extra: ``--cfg-options`` for every stage.
        active: Stage name -> job id of stages already queued or running; not submitted again.

    Raises:
        ValueError: If ``only`` names an unknown stage, or a stage needs an earlier stage that
            is neither complete nor submitted with it.
    """
    names = [s.name for s in pipeline.stages]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f'unknown stages {unknown}; the pipeline has {names}')
    active = active or {}
    jobs: List[Job] = []
    for stage in pipeline.stages:
        if ((only and stage.name not in only) or pipeline.is_complete(stage.name)
                or stage.name in active):
            continue
        after = [d for d in stage.depends_on if not pipeline.is_complete(d)]
        missing = [d for d in after if d not in [j.stage.name for j in jobs] + list(active)]
        if missing:
            raise ValueError(f'{stage.name} needs {missing}: not complete in {pipeline.work_dir} '
                             f'and not submitted with it (add them to --stages)')
        argv = pipeline.train_args(stage, extra)
        if stage.kind == 'codes':  # an extraction: no batch to split
            build_codes_parser().parse_args(argv)  # the job's arguments must parse
            global_batch = rank_batch = None
        else:
            train_args = build_train_parser().parse_args(argv)
            global_batch, rank_batch = batch_of(stage, train_args, res)
        work_dir = pipeline.stage_dir(stage.name)
        jobs.append(Job(stage=stage, argv=argv, work_dir=work_dir, after=after,
                        folder=osp.join(pipeline.work_dir, 'slurm', stage.name),
                        params=executor_params(stage, res), global_batch=global_batch,
                        rank_batch=rank_batch))
    return jobs


def describe(job: Job, res: dict, active: Dict[str, str]) -> str:
    """What ``--dry-run`` prints for one job (``active``: stage -> job id already queued)."""
    gpus = f'{res["gpus_per_node"]} GPUs' if res['gpus_per_node'] else 'no GPU'
    mem = {None: 'partition default', 0: 'whole node'}.get(res['mem_gb'], f'{res["mem_gb"]} GB')
    deps = ','.join(f'afterok:{active[d]}' if d in active else f'afterok:<{d}>'
                    for d in job.after) or '-'
    world_size = res['nodes'] * res['tasks_per_node']
    per = 'per GPU' if res['gpus_per_node'] else 'per task'
    batch = ('the config\'s train_dataloader' if job.global_batch is None else
             f'global batch {job.global_batch}, {job.rank_batch} {per} '
             f'({job.global_batch} / world size {world_size})')
    return '\n'.join([
        f'{job.stage.name}:',
        f'  resources: {res["nodes"]} nodes x {gpus}, {res["tasks_per_node"]} tasks per node '
        f'(world size {res["nodes"] * res["tasks_per_node"]}), {res["cpus_per_task"]} CPUs per '
        f'task, memory {mem}, partition {res["partition"] or "(default)"}, time '
        f'{res["time_min"]} min, max requeues {res["max_requeues"]}',
        f'  batch: {batch}',
        f'  dependency: {deps}',
        f'  command: python -m {job.stage.module} {" ".join(job.argv)}',
        f'  logs: {job.folder}/%j_0_log.out'])


def submit(jobs: List[Job], res: dict, active: Dict[str, str]) -> Dict[str, str]:
    """Submit the jobs in order; returns stage name -> SLURM job id (``active`` ones included)."""
    import submitit

    ids: Dict[str, str] = dict(active)
    for job in jobs:
        extra = {'requeue': True, 'comment': f'gear:{job.work_dir}'}
        if job.after:
            extra['dependency'] = ','.join(f'afterok:{ids[d]}' for d in job.after)
            extra['kill-on-invalid-dep'] = 'yes'  # a failed input cancels its dependents
        executor = submitit.AutoExecutor(folder=job.folder, cluster='slurm',
                                         slurm_max_num_timeout=res['max_requeues'])
        setup = [f'export PYTHONPATH={GEAR_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}']  # unpickle the Trainer
        executor.update_parameters(**job.params, slurm_additional_parameters=extra,
                                   slurm_setup=setup)
        trainer = Trainer(job.stage.name, job.argv, job.work_dir,
                          max_requeues=res['max_requeues'], module=job.stage.module)
        ids[job.stage.name] = executor.submit(trainer).job_id
        print(f'[slurm] submitted {job.stage.name} as job {ids[job.stage.name]}'
              + (f' ({extra["dependency"]})' if job.after else ''), flush=True)
    return ids


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        res = resolve(args)
        pipeline = get_pipeline(args)
        running = active_jobs()
        active = {s.name: running[f'gear:{pipeline.stage_dir(s.name)}'] for s in pipeline.stages
                  if f'gear:{pipeline.stage_dir(s.name)}' in running}
        jobs = plan(pipeline, res, args.stages, args.cfg_options, active)
    except (KeyError, ValueError, FileNotFoundError) as e:
        sys.exit(f'[slurm] {e.args[0] if isinstance(e, KeyError) else e}')
    print(f'[slurm] cluster {res["name"]}, pipeline {pipeline.source}, work dir '
          f'{pipeline.work_dir}')
    for stage in pipeline.stages:
        if pipeline.is_complete(stage.name):
            print(f'[slurm] {stage.name}: complete, skipped')
        elif stage.name in active:
            print(f'[slurm] {stage.name}: already queued or running as job {active[stage.name]}')
    if not jobs:
        print('[slurm] nothing to submit')
        return
    if args.dry_run:
        print('\n'.join(describe(job, res, active) for job in jobs))
        return
    try:
        ids = submit(jobs, res, active)
    except RuntimeError as e:  # submitit: no sbatch/srun here, or sbatch refused the job
        sys.exit(f'[slurm] submission failed: {e}')
    print(f'[slurm] watch: squeue -u $USER; cancel: scancel {" ".join(ids.values())}; '
          f'logs: {pipeline.work_dir}/slurm/<stage>/<job id>_0_log.out')


if __name__ == '__main__':
    main()
