"""Run several trainings one after another in the same ``torchrun`` processes, each through
``gear.train.main(argv)`` (what a SLURM task runs in-process), so a matrix of shipped
configs x strategies pays for process start-up and imports once.

    python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tests/engine/train_many.py RUNS.json

The process group is made here, first (gloo, the tests' collective timeout: conftest's
``TEST_DIST_TIMEOUT``), and is the caller's: a run keeps it open, where a run that made its own
group would destroy it at its end (``gear.train.main``).

RUNS.json: a list of ``{"name": str, "argv": [...], "copy": [[src, dst], ...]}``. Before a run,
rank 0 copies each ``src`` file or folder to ``dst`` (e.g. a checkpoint to resume from); the
ranks then meet at a barrier, train, and meet again. Each finished run appends its name to
``RUNS.json.done`` (rank 0). The first failing run stops the launch with its error.
"""
import json
import os.path as osp
import shutil
import sys

import torch.distributed as dist

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TIMEOUT_S = 120  # conftest.TEST_DIST_TIMEOUT, which every run passes too


def train_main():
    from gear.train import main
    return main


def main(runs_file: str) -> None:
    with open(runs_file) as f:
        runs = json.load(f)
    train = train_main()
    from gear.utils.distributed import init_process_group
    init_process_group('gloo', TIMEOUT_S)
    for run in runs:
        if run.get('copy'):
            if dist.get_rank() == 0:
                for src, dst in run['copy']:
                    (shutil.copytree if osp.isdir(src) else shutil.copy)(src, dst)
            dist.barrier()
        print(f'[train_many] {run["name"]}: python -m gear.train {" ".join(run["argv"])}', flush=True)
        train(run['argv'])  # in this group: GearRunner.setup_env makes none
        dist.barrier()
        if dist.get_rank() == 0:
            with open(runs_file + '.done', 'a') as f:
                f.write(run['name'] + '\n')


if __name__ == '__main__':
    main(sys.argv[1])
