"""Stage ``partition``: divide the training split into client manifests."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.partition_build import build_partition
from fussbench.params import Params


def run(params: Params) -> Path:
    """Write ``data/partitions/<setup>/client_XX.json``, ``summary.csv``, ``partition.json``
    (:func:`~fussbench.data.partition_build.build_partition`); print its summary line."""
    built = build_partition(params)
    if built.summary is not None:
        print(built.summary, flush=True)
    return built.out_dir
