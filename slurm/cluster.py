"""Cluster defaults for ``slurm/launch.py``: one dict per cluster, picked by name.

The launcher reads ``--cluster NAME``, else ``$GEAR_SLURM_CLUSTER``, else ``'default'``; command
line flags (``--partition``, ``--gpus-per-node``, ...) override the picked profile. To run on your
cluster, add a dict here (or edit ``'default'``) with its partition and node shape.

Keys:
    partition (str | None): SLURM partition; ``None`` uses the cluster's default partition.
    gpus_per_node (int): GPUs per node; one task (process) per GPU, one task per node on CPU.
    cpus_per_task (int): CPU cores per task (data loading workers + the main process).
    mem_gb (int | None): memory per node in GB; ``0`` asks for all of a node's memory,
        ``None`` leaves it to the partition's default.
    time_min (int): time limit of one job in minutes; a job that reaches it is requeued.
    signal_delay_s (int): how long before the time limit SLURM signals the job (USR2), which
        then requeues itself.
    max_requeues (int): how many times one stage may be requeued (timeout or preemption).
"""
import copy
import os
from typing import Dict, Optional

CLUSTER_ENV = 'GEAR_SLURM_CLUSTER'

CLUSTERS: Dict[str, dict] = {
    # A typical GPU cluster: nodes of 8 GPUs, 10 cores per GPU, whole nodes, 3-day jobs.
    'default': dict(
        partition=None,
        gpus_per_node=8,
        cpus_per_task=10,
        mem_gb=0,
        time_min=3 * 24 * 60,
        signal_delay_s=120,
        max_requeues=20,
    ),
    # The single-node CPU cluster of .ci/slurm_up.sh (tests, laptops): 1 task on 2 cores.
    'local': dict(
        partition=None,
        gpus_per_node=0,
        cpus_per_task=2,
        mem_gb=None,
        time_min=30,
        signal_delay_s=30,
        max_requeues=3,
    ),
}


def cluster_name(name: Optional[str] = None) -> str:
    """The profile to use: ``name`` if given, else ``$GEAR_SLURM_CLUSTER``, else ``'default'``."""
    return name or os.environ.get(CLUSTER_ENV) or 'default'


def get_cluster(name: Optional[str] = None) -> dict:
    """A copy of a cluster's defaults.

    Args:
        name: A key of ``CLUSTERS``; ``None`` picks as :func:`cluster_name` does.

    Returns:
        The profile dict (see the module docstring for its keys) plus ``name``.

    Raises:
        KeyError: If no profile has that name; the message lists the known ones.
    """
    name = cluster_name(name)
    if name not in CLUSTERS:
        raise KeyError(f'unknown cluster {name!r} (from --cluster or ${CLUSTER_ENV}); '
                       f'known: {sorted(CLUSTERS)} (add yours to slurm/cluster.py)')
    return dict(copy.deepcopy(CLUSTERS[name]), name=name)


def tasks_per_node(gpus_per_node: int, requested: Optional[int] = None) -> int:
    """``requested`` (``--tasks-per-node``), else one task per GPU, or one on a CPU-only node.

    Raises:
        ValueError: If ``requested`` is below 1, or differs from ``gpus_per_node`` on a GPU
            node (each task drives one GPU).
    """
    if requested is None:
        return max(int(gpus_per_node), 1)
    if int(requested) < 1:
        raise ValueError(f'--tasks-per-node must be >= 1, got {requested}')
    if gpus_per_node and int(requested) != int(gpus_per_node):
        raise ValueError(f'--tasks-per-node {requested} on nodes with {gpus_per_node} GPUs: '
                         'each task drives one GPU (set --gpus-per-node instead)')
    return int(requested)
