"""A real single-node SLURM cluster for tests/slurm, and helpers to watch its jobs.

The session fixture ``slurm_cluster`` uses a running cluster if ``sinfo`` shows a node up, else
starts one with ``.ci/slurm_up.sh``. Without the SLURM and munge binaries, or without root to
start them, the tests that need it are skipped with that reason; a start that fails otherwise
fails the tests with the script's output.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import time
from typing import Dict, List

import pytest

from ..conftest import REPO

SLURM_UP = osp.join(REPO, '.ci', 'slurm_up.sh')
BINARIES = ('munged', 'slurmctld', 'slurmd', 'sinfo', 'sbatch', 'squeue', 'scontrol', 'scancel')
DONE = {'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY',
        'BOOT_FAIL', 'DEADLINE', 'PREEMPTED'}


def _which(name: str) -> bool:
    return bool(shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin'))


def _node_up() -> bool:
    try:
        out = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(s.strip('*~#') in ('idle', 'mixed', 'allocated', 'completing')
               for s in out.split())


@pytest.fixture(scope='session')
def slurm_cluster() -> str:
    """The node name of a running single-node cluster (started here if needed)."""
    if _which('sinfo') and _node_up():
        return subprocess.run(['hostname', '-s'], capture_output=True, text=True).stdout.strip()
    missing = [b for b in BINARIES if not _which(b)]
    if missing:
        pytest.skip(f'SLURM cannot run here: {", ".join(missing)} missing '
                    '(apt-get install -y slurmctld slurmd slurm-client munge)')
    if os.geteuid() != 0:
        pytest.skip('SLURM is installed but not running, and starting it (.ci/slurm_up.sh) '
                    'needs root')
    proc = subprocess.run(['bash', SLURM_UP], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not _node_up():
        pytest.fail(f'.ci/slurm_up.sh could not start SLURM (exit {proc.returncode}):\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return subprocess.run(['hostname', '-s'], capture_output=True, text=True).stdout.strip()


def job_info(job_id: str) -> Dict[str, str]:
    """``scontrol show job`` as a dict (JobState, StartTime, EndTime, Restarts, ...)."""
    out = subprocess.run(['scontrol', '-o', 'show', 'job', str(job_id)], capture_output=True,
                         text=True, timeout=30).stdout
    return dict(tok.split('=', 1) for tok in out.split() if '=' in tok)


def wait_for_jobs(job_ids: List[str], timeout: float, until=None) -> Dict[str, Dict[str, str]]:
    """Poll until every job is in a final state (or ``until(infos)`` is true); return the infos.

    Raises:
        AssertionError: On timeout, with the jobs' states and ``squeue``.
    """
    deadline = time.time() + timeout
    while True:
        infos = {j: job_info(j) for j in job_ids}
        if until(infos) if until else all(i.get('JobState') in DONE for i in infos.values()):
            return infos
        if time.time() > deadline:
            squeue = subprocess.run(['squeue'], capture_output=True, text=True).stdout
            raise AssertionError(f'jobs not done after {timeout} s: '
                                 f'{ {j: i.get("JobState") for j, i in infos.items()} }\n{squeue}')
        time.sleep(1)


def submitted_ids(stdout: str) -> Dict[str, str]:
    """Stage name -> job id from ``slurm/launch.py``'s output."""
    return dict(re.findall(r'\[slurm\] submitted (\S+) as job (\d+)', stdout))


@pytest.fixture
def cancel_on_exit():
    """A list to append job ids to; whatever is still queued at teardown is cancelled."""
    ids: List[str] = []
    yield ids
    if ids:
        subprocess.run(['scancel', *ids], capture_output=True)
