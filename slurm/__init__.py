"""SLURM launching: ``slurm/launch.py`` (submit a pipeline as dependent jobs) and
``slurm/cluster.py`` (per-cluster defaults). The job itself is ``gear.pipeline.slurm_trainer``."""
