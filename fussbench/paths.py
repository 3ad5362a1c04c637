"""Where the pipeline reads and writes, relative to the repository root.

These are the same paths ``dvc.yaml`` names as deps and outs; keep the two in step. Every
stage, the report and the Flower export find runs and data through these functions.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RUNS = Path("runs")


def raw_dir(dataset: str) -> Path:
    """The downloaded dataset, in its own layout."""
    return DATA / "raw" / dataset


def partition_dir(setup: str) -> Path:
    """One manifest per client plus a summary table, per setup (dataset + partition)."""
    return DATA / "partitions" / setup


def features_dir(dataset: str, backbone: str) -> Path:
    """The feature cache: one sub-folder per split."""
    return DATA / "features" / dataset / backbone


def seed_dir(folder: Path, seed: int) -> Path:
    """The run of ``seed`` inside the folder of one method (``fussbench federate
    --all-seeds``)."""
    return folder / f"seed{seed}"


def run_dir(runs: Path, setup: str, method: str, seed: int) -> Path:
    """The folder of one run of the comparison: ``<runs>/<setup>/<method>/seed<k>``."""
    return seed_dir(runs / setup / method, seed)
