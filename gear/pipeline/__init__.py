"""Orchestration above the public API: chains of stages (``chain``), studies over seeds and
ablations (``study``, ``study_report``), pipeline summaries (``summary``) and the SLURM job
(``slurm_trainer``), the progress lines of a running pipeline (``progress``). Every stage runs
``python -m gear.train``."""
from .chain import Pipeline, Stage, load_pipeline, run_evaluation, run_pipeline

__all__ = ['Pipeline', 'Stage', 'load_pipeline', 'run_evaluation', 'run_pipeline']
