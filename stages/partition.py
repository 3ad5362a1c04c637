"""Stage ``partition``: divide the training split into client manifests."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.partition import (
    check_method,
    label_histograms,
    partition_indices,
    write_partition,
)
from fussbench.params import Params
from fussbench.paths import partition_dir, raw_dir


def run(params: Params) -> Path:
    """Write ``data/partitions/<setup>/client_XX.json``, ``summary.csv``, ``partition.json``."""
    spec = params.dataset_spec()
    settings = params.partition
    check_method(settings.method)  # before reading any label
    samples = spec.samples(raw_dir(spec.name), spec.train_split)
    histograms = label_histograms(spec, samples)
    clients = partition_indices(
        settings.method,
        groups=[sample.group for sample in samples],
        histograms=histograms,
        n_clients=settings.n_clients,
        alpha=settings.alpha,
        shares=settings.shares,
        seed=settings.seed,
        client_groups=settings.groups,
    )
    out_dir = partition_dir(params.setup)
    meta = {"setup": params.setup, "dataset": spec.name, "split": spec.train_split}
    write_partition(
        out_dir,
        samples,
        clients,
        histograms,
        spec.class_names,
        meta,
        method=settings.method,
        params={
            "n_clients": settings.n_clients,
            "alpha": settings.alpha,
            "shares": list(settings.shares),
            **({"groups": settings.groups} if settings.method == "groups" else {}),
        },
        seed=settings.seed,
    )
    return out_dir
