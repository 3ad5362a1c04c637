"""Stage ``partition``: divide the training split into client manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fussbench.data.partition import (
    FEATURE_METHODS,
    check_method,
    client_list_paths,
    label_histograms,
    label_skew,
    partition_indices,
    read_client_lists,
    select_listed,
    write_partition,
)
from fussbench.features.skew import feature_skew
from fussbench.params import Params
from fussbench.paths import features_dir, partition_dir, raw_dir


def run(params: Params) -> Path:
    """Write ``data/partitions/<setup>/client_XX.json``, ``summary.csv``, ``partition.json``."""
    spec = params.dataset_spec()
    settings = params.partition
    check_method(settings.method)  # before reading any label
    samples = spec.samples(raw_dir(spec.name), spec.train_split)
    meta = {"setup": params.setup, "dataset": spec.name, "split": spec.train_split}
    train = embeddings = None
    if settings.method in FEATURE_METHODS:
        # imports torch (the cache module): only for these methods
        from fussbench.features.embeddings import image_embeddings, open_training_features

        directory = features_dir(spec.name, params.backbone) / spec.train_split
        train = open_training_features(spec, params.backbone_config(), directory, settings.method)
        embeddings = image_embeddings(train, [sample.name for sample in samples])
        meta["features"] = str(directory)
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
            embeddings=embeddings,
            n_embedding_clusters=settings.embedding_clusters,
        )
    skew = None
    if train is not None:
        names = [[samples[row].name for row in rows] for rows in clients]
        skew = feature_skew(train.pooled, [train.rows(client) for client in names])
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
            **(
                {"embedding_clusters": settings.embedding_clusters}
                if settings.method in FEATURE_METHODS
                else {}
            ),
        },
        seed=settings.seed,
        feature_skew=skew,
    )
    sizes = [len(rows) for rows in clients]
    label_text = _label_skew_text(histograms, clients)
    if settings.method == "lists":
        print(
            f"{len(sizes)} client lists: {sum(sizes)} of the split's {split_images} images, "
            f"{min(sizes)} to {max(sizes)} per client; label skew (JS divergence from the "
            f"pooled class distribution, weighted mean) {label_text}; per client in "
            f"{out_dir / 'summary.csv'}",
            flush=True,
        )
    if skew is not None:
        print(
            f"{len(sizes)} clients from {settings.embedding_clusters} k-means clusters of the "
            f"pooled features, images per client {sizes}; label skew (JS divergence, "
            f"weighted mean) {label_text}; feature skew (mean cosine distance of the client "
            f"mean features to the pooled mean) {skew['cosine_mean']:.4f}; per client in "
            f"{out_dir / 'partition.json'}",
            flush=True,
        )
    return out_dir


def _label_skew_text(histograms: np.ndarray, clients: list[np.ndarray]) -> str:
    """The weighted mean label skew with 3 decimals, or why there is none."""
    skew = label_skew(histograms, clients)["js_weighted_mean"]
    return "n/a (no labels)" if skew is None else f"{skew:.3f}"
