"""Stage ``partition``: divide the training split into client manifests."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.partition import (
    check_method,
    client_list_paths,
    label_histograms,
    label_skew,
    partition_indices,
    read_client_lists,
    select_listed,
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
    meta = {"setup": params.setup, "dataset": spec.name, "split": spec.train_split}
    if settings.method == "lists":
        paths = client_list_paths(settings.client_lists, settings.n_clients)
        split_images = len(samples)
        samples, clients = select_listed(samples, read_client_lists(paths), paths)
        histograms = label_histograms(spec, samples)
        meta["split_images"] = split_images
        meta["lists"] = {str(path): len(rows) for path, rows in zip(paths, clients, strict=True)}
    else:
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
            **({"client_lists": settings.client_lists} if settings.method == "lists" else {}),
        },
        seed=settings.seed,
    )
    if settings.method == "lists":
        sizes = [len(rows) for rows in clients]
        skew = label_skew(histograms, clients)["js_weighted_mean"]
        skew_text = "n/a (no labels)" if skew is None else f"{skew:.3f}"
        print(
            f"{len(sizes)} client lists: {sum(sizes)} of the split's {split_images} images, "
            f"{min(sizes)} to {max(sizes)} per client; label skew (JS divergence from the "
            f"pooled class distribution, weighted mean) {skew_text}; per client in "
            f"{out_dir / 'summary.csv'}",
            flush=True,
        )
    return out_dir
