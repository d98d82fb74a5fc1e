"""slurm/launch.py on a real single-node SLURM cluster: the tiny pipeline runs as dependent jobs
in afterok order, a preempted stage requeues itself and resumes from its checkpoint without
repeating checkpointed steps, a job of two tasks (one CPU each) trains the shipped stage 0 to
the end as two ranks, and the 4-node ImageNet dry run shows the expected jobs. Plus the
launcher's planning and the job's environment, without a cluster."""
import glob
import json
import os.path as osp
import pickle
import re
import subprocess
import time
from types import SimpleNamespace

import pytest

from gear.pipeline.chain import load_pipeline
from gear.pipeline.slurm_trainer import Trainer, distributed_env, master_port
from slurm.cluster import get_cluster
from slurm.launch import plan, resolve

from ..conftest import DISTRIBUTED_ENV, TEST_DIST_TIMEOUT, run_tool
from .conftest import DONE, job_info, submitted_ids, wait_for_jobs

TINY = 'configs/pipelines/gear_vq_tiny_fashionmnist.py'
FAST = ['train_cfg.max_iters=4', 'train_cfg.val_interval=2', 'default_hooks.logger.interval=2',
        'default_hooks.checkpoint.interval=2', 'global_batch_size=4',
        'val_dataloader.dataset.num_samples=8']
# one core per job: two jobs share the 2-core node (stage1 beside the baseline)
LOCAL = ['--cluster', 'local', '--time', '10', '--cpus-per-task', '1']


def _args(**kw):
    base = dict(cluster='local', gpus_per_node=None, partition=None, cpus_per_task=None,
                time=None, max_requeues=None, nodes=1)
    return SimpleNamespace(**{**base, **kw})


def test_dry_run_of_the_4_node_imagenet_pipeline(tmp_path):
    proc = run_tool(['slurm/launch.py', '--nodes', '4', '--dry-run', '--work-dir', str(tmp_path)],
                    timeout=120)
    out = proc.stdout
    jobs = dict(re.findall(r'^(\w+):\n((?:  .*\n?)+)', out, flags=re.M))
    assert list(jobs) == ['stage0_tokenizer', 'stage1_gear', 'stage2_vqonly', 'baseline']
    for body in jobs.values():
        assert '4 nodes x 8 GPUs, 8 tasks per node (world size 32)' in body
        assert 'partition (default)' in body and 'memory whole node' in body
        # the recipe's global batch on 32 GPUs (REFERENCE.md: 256 for every stage)
        assert 'batch: global batch 256, 8 per GPU (256 / world size 32)' in body
    assert 'dependency: -' in jobs['stage0_tokenizer']
    assert 'dependency: afterok:<stage0_tokenizer>' in jobs['stage1_gear']
    assert 'dependency: afterok:<stage1_gear>' in jobs['stage2_vqonly']
    assert 'dependency: afterok:<stage0_tokenizer>' in jobs['baseline']
    stage0 = f'{tmp_path}/stage0_tokenizer/final.pth'
    assert f'model.init_from.0.checkpoint={stage0}' in jobs['stage1_gear']
    assert '--resume' in jobs['stage2_vqonly'] and 'submitted' not in out
    assert not osp.exists(tmp_path / 'slurm')  # nothing was submitted


def test_a_global_batch_that_does_not_divide_or_a_bad_override_submits_nothing(tmp_path):
    proc = run_tool(['slurm/launch.py', '--nodes', '3', '--gpus-per-node', '1', '--dry-run',
                     '--work-dir', str(tmp_path)], timeout=120, check=False)
    assert proc.returncode != 0
    assert 'stage0_tokenizer' in proc.stderr
    assert 'global_batch_size: 256 does not divide over 3 ranks' in proc.stderr
    proc = run_tool(['slurm/launch.py', '--dry-run', '--work-dir', str(tmp_path),
                     '--cfg-options', 'train_cfg.max_iter=4'], timeout=120, check=False)
    assert proc.returncode != 0
    assert "did you mean 'train_cfg.max_iters'" in proc.stderr
    assert not osp.exists(tmp_path / 'slurm')


def test_plan_skips_complete_stages_and_their_edges(tmp_path):
    pipeline = load_pipeline(TINY, str(tmp_path))
    (tmp_path / 'stage0_warmup').mkdir()
    (tmp_path / 'stage0_warmup' / 'final.pth').write_bytes(b'x')
    jobs = plan(pipeline, resolve(_args()), extra={'train_cfg.max_iters': 4})
    assert [j.stage.name for j in jobs] == ['stage1_gear', 'stage2_vqonly', 'baseline']
    assert [j.after for j in jobs] == [[], ['stage1_gear'], []]
    assert jobs[0].params == dict(name='gear-stage1_gear', nodes=1, tasks_per_node=1,
                                  cpus_per_task=2, timeout_min=30, slurm_signal_delay_s=30)
    assert 'train_cfg.max_iters=4' in jobs[0].argv and '--resume' in jobs[0].argv
    # a stage already queued is not submitted again; its dependents wait on it
    jobs = plan(pipeline, resolve(_args()), active={'stage1_gear': '77'})
    assert [j.stage.name for j in jobs] == ['stage2_vqonly', 'baseline']
    with pytest.raises(ValueError, match=r"stage2_vqonly needs \['stage1_gear'\]"):
        plan(pipeline, resolve(_args()), only=['stage2_vqonly'])


def test_cluster_profiles(monkeypatch):
    monkeypatch.delenv('GEAR_SLURM_CLUSTER', raising=False)
    assert get_cluster()['gpus_per_node'] == 8
    monkeypatch.setenv('GEAR_SLURM_CLUSTER', 'local')
    assert get_cluster()['name'] == 'local' and get_cluster()['gpus_per_node'] == 0
    assert resolve(_args(cluster=None, gpus_per_node=4, nodes=2))['tasks_per_node'] == 4
    with pytest.raises(KeyError, match='unknown cluster'):
        get_cluster('nope')


def test_job_environment_and_requeue_bound():
    job = SimpleNamespace(global_rank=9, num_tasks=16, local_rank=1, hostnames=['n1', 'n2'],
                          job_id='123456')
    assert distributed_env(job) == dict(RANK='9', WORLD_SIZE='16', LOCAL_RANK='1',
                                        MASTER_ADDR='n1', MASTER_PORT=str(20000 + 3456))
    assert master_port('40000_3') == 20000
    trainer = Trainer('s', ['cfg.py', '--work-dir', '/w'], '/nonexistent', max_requeues=2)
    assert trainer.train_argv(8)[:3] == ['cfg.py', '--launcher', 'pytorch']
    assert trainer.train_argv(1)[:3] == ['cfg.py', '--launcher', 'none']
    again = pickle.loads(pickle.dumps(trainer)).checkpoint()
    assert again.function.requeues == 1 and again.function.argv == trainer.argv
    assert again.function.checkpoint().function.requeues == 2
    assert Trainer('s', ['c'], '/nonexistent', requeues=2, max_requeues=2).checkpoint() is None


def test_pipeline_runs_as_dependent_jobs(slurm_cluster, fashion_mnist_root, tmp_path,
                                         cancel_on_exit):
    cmd = ['slurm/launch.py', '--pipeline', TINY, *LOCAL, '--work-dir', str(tmp_path),
           '--cfg-options', *FAST]
    ids = submitted_ids(run_tool(cmd, timeout=120).stdout)
    cancel_on_exit.extend(ids.values())
    assert list(ids) == ['stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline']
    # launched twice by mistake: queued stages are not submitted again
    twice = run_tool(cmd, timeout=120).stdout
    assert twice.count('already queued or running') + twice.count('complete, skipped') == 4
    assert 'nothing to submit' in twice and not submitted_ids(twice)
    infos = wait_for_jobs(list(ids.values()), timeout=240)
    for stage, job_id in ids.items():
        logs = glob.glob(str(tmp_path / 'slurm' / stage / f'{job_id}_0_log.*'))
        assert infos[job_id]['JobState'] == 'COMPLETED', [open(f).read()[-3000:] for f in logs]
        assert osp.isfile(tmp_path / stage / 'final.pth')
    script = tmp_path / 'slurm' / 'stage1_gear' / f'{ids["stage1_gear"]}_submission.sh'
    script = script.read_text()
    assert f'--dependency=afterok:{ids["stage0_warmup"]}' in script
    start = {s: infos[j]['StartTime'] for s, j in ids.items()}  # ISO times sort as strings
    end = {s: infos[j]['EndTime'] for s, j in ids.items()}
    assert start['stage1_gear'] >= end['stage0_warmup']
    assert start['stage2_vqonly'] >= end['stage1_gear']
    assert start['baseline'] >= end['stage0_warmup']
    # the same command again: everything is complete, nothing is submitted
    again = run_tool(cmd, timeout=120).stdout
    assert again.count('complete, skipped') == 4 and 'nothing to submit' in again


def _scalar_steps(run_dir: str):
    with open(glob.glob(osp.join(run_dir, 'vis_data', 'scalars.json'))[0]) as f:
        return [r['step'] for r in map(json.loads, f) if any(k.startswith('loss') or '/loss' in k
                                                             for k in r)]


def test_preempted_stage_requeues_and_resumes(slurm_cluster, fashion_mnist_root, tmp_path,
                                              cancel_on_exit):
    max_iters, interval = 40, 10
    opts = [f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
            'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={interval}',
            'global_batch_size=4', 'val_dataloader.dataset.num_samples=8']
    cmd = ['slurm/launch.py', '--pipeline', TINY, '--stages', 'stage0_warmup', *LOCAL,
           '--work-dir', str(tmp_path), '--cfg-options', *opts]
    ids = submitted_ids(run_tool(cmd, timeout=120).stdout)
    job_id = ids['stage0_warmup']
    cancel_on_exit.append(job_id)
    stage_dir = tmp_path / 'stage0_warmup'
    log_file = tmp_path / 'slurm' / 'stage0_warmup' / f'{job_id}_0_log.out'
    deadline = time.time() + 150
    # wait for a checkpoint, then two more steps: those are redone after the requeue
    while not (log_file.exists() and f'Iter(train) [{interval + 2}/' in log_file.read_text()):
        assert time.time() < deadline and job_info(job_id).get('JobState') not in DONE, \
            job_info(job_id)
        time.sleep(0.2)
    # what SLURM sends signal_delay_s before the time limit, or on preemption
    subprocess.run(['scancel', '--signal=USR2', job_id], check=True)
    infos = wait_for_jobs([job_id], timeout=180)
    log = log_file.read_text()
    assert infos[job_id]['JobState'] == 'COMPLETED', log[-4000:]
    assert int(infos[job_id]['Restarts']) == 1
    assert 'run 1 (requeues 0/3)' in log and 'run 2 (requeues 1/3)' in log
    resumed = int(re.search(r'requeue 1/3, resumes from \S+/iter_(\d+)\.pth', log).group(1))
    assert resumed >= interval and resumed % interval == 0
    assert f'Resuming from the latest checkpoint {stage_dir}/iter_{resumed}.pth' in log
    runs = sorted(d for d in glob.glob(str(stage_dir / '2*')) if osp.isdir(d))
    assert len(runs) == 2, runs
    first, second = _scalar_steps(runs[0]), _scalar_steps(runs[1])
    assert first[0] == 1 and resumed <= first[-1] < max_iters  # interrupted after the checkpoint
    assert second == list(range(resumed + 1, max_iters + 1))  # no checkpointed step is redone
    assert osp.isfile(stage_dir / 'final.pth')


def test_a_failing_stage_is_not_requeued_and_cancels_its_dependents(
        slurm_cluster, fashion_mnist_root, tmp_path, cancel_on_exit):
    cmd = ['slurm/launch.py', '--pipeline', TINY, *LOCAL, '--stages', 'stage0_warmup',
           'stage1_gear', '--work-dir', str(tmp_path),
           '--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent']
    ids = submitted_ids(run_tool(cmd, timeout=120).stdout)
    cancel_on_exit.extend(ids.values())
    infos = wait_for_jobs(list(ids.values()), timeout=120)
    first, second = infos[ids['stage0_warmup']], infos[ids['stage1_gear']]
    assert first['JobState'] == 'FAILED' and first['Restarts'] == '0'
    assert second['JobState'] == 'CANCELLED' and second['Reason'] == 'DependencyNeverSatisfied'
    err = (tmp_path / 'slurm' / 'stage0_warmup' / f'{ids["stage0_warmup"]}_0_log.err').read_text()
    assert "FileNotFoundError: Fashion-MNIST data_root '/nonexistent'" in err  # the error stays


def test_a_two_task_job_trains_the_shipped_stage0_to_the_end(slurm_cluster, fashion_mnist_root,
                                                             tmp_path, cancel_on_exit):
    run_dir = tmp_path / 'stage0'
    cmd = ['slurm/launch.py', 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py',
           '--cluster', 'local', '--time', '10', '--tasks-per-node', '2', '--cpus-per-task', '1',
           '--work-dir', str(run_dir), '--cfg-options', 'train_cfg.max_iters=2',
           'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=1', TEST_DIST_TIMEOUT]
    dry = run_tool([*cmd, '--dry-run'], timeout=120).stdout
    assert '1 tasks per node' not in dry and '2 tasks per node (world size 2), 1 CPUs per task' in dry
    ids = submitted_ids(run_tool(cmd, timeout=120, env=DISTRIBUTED_ENV).stdout)
    job_id = ids['stage0']
    cancel_on_exit.append(job_id)
    infos = wait_for_jobs([job_id], timeout=300)
    logs = {t: (tmp_path / 'slurm' / 'stage0' / f'{job_id}_{t}_log.out') for t in (0, 1)}
    errs = [(tmp_path / 'slurm' / 'stage0' / f'{job_id}_{t}_log.err') for t in (0, 1)]
    assert infos[job_id]['JobState'] == 'COMPLETED', [e.read_text()[-3000:] for e in errs
                                                      if e.exists()]
    assert all(log.exists() for log in logs.values())  # one log per task: two ranks ran
    assert 'rank 0 of 2' in logs[0].read_text()
    assert 'Saving checkpoint at 2 iterations' in logs[0].read_text()
    assert osp.isfile(run_dir / 'final.pth') and osp.isfile(run_dir / 'iter_2.pth')
