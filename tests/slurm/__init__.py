"""Tests of the SLURM launcher, on a real single-node cluster where one can run."""
