"""A setup's partition from params: the samples split into clients, their label
histograms, the feature skew where the split reads features, and the folder written
(the ``partition`` stage's work)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class BuiltPartition:
    """A written partition.

    Attributes:
        out_dir: ``data/partitions/<setup>``.
        summary: one line for the log (client lists and feature-clustered splits), or None.
    """

    out_dir: Path
    summary: str | None


def build_partition(params: Params) -> BuiltPartition:
    """Split ``params.setup``'s training split into clients as ``params.partition`` says
    and write ``client_XX.json``, ``summary.csv`` and ``partition.json`` atomically.

    ``lists`` keeps the listed images only; the methods of :data:`FEATURE_METHODS` read
    the cached pooled features (and record the feature skew); every other method splits by
    groups or label histograms.

    Raises:
        FussbenchError: an unknown method (before any label is read), or bad lists.
    """
    spec = params.dataset_spec()
    settings = params.partition
    check_method(settings.method)  # before reading any label
    samples = spec.samples(raw_dir(spec.name), spec.train_split)
    meta: dict[str, Any] = {"setup": params.setup, "dataset": spec.name, "split": spec.train_split}
    listed = settings.method == "lists"
    clusters_features = settings.method in FEATURE_METHODS
    train = embeddings = None
    if clusters_features:
        # imports torch (the cache module): only for these methods
        from fussbench.features.embeddings import image_embeddings, open_training_features

        directory = features_dir(spec.name, params.backbone) / spec.train_split
        train = open_training_features(spec, params.backbone_config(), directory, settings.method)
        embeddings = image_embeddings(train, [sample.name for sample in samples])
        meta["features"] = str(directory)
    split_images = len(samples)
    if listed:
        paths = client_list_paths(settings.client_lists, settings.n_clients)
        samples, clients = select_listed(samples, read_client_lists(paths), paths)
        meta["split_images"] = split_images
        meta["lists"] = {str(path): len(rows) for path, rows in zip(paths, clients, strict=True)}
    histograms = label_histograms(spec, samples)
    if not listed:
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
            **({"client_lists": settings.client_lists} if listed else {}),
            **({"embedding_clusters": settings.embedding_clusters} if clusters_features else {}),
        },
        seed=settings.seed,
        feature_skew=skew,
    )
    sizes = [len(rows) for rows in clients]
    label_text = _label_skew_text(histograms, clients)
    summary = None
    if listed:
        summary = (
            f"{len(sizes)} client lists: {sum(sizes)} of the split's {split_images} images, "
            f"{min(sizes)} to {max(sizes)} per client; label skew (JS divergence from the "
            f"pooled class distribution, weighted mean) {label_text}; per client in "
            f"{out_dir / 'summary.csv'}"
        )
    if skew is not None:
        summary = (
            f"{len(sizes)} clients from {settings.embedding_clusters} k-means clusters of the "
            f"pooled features, images per client {sizes}; label skew (JS divergence, "
            f"weighted mean) {label_text}; feature skew (mean cosine distance of the client "
            f"mean features to the pooled mean) {skew['cosine_mean']:.4f}; per client in "
            f"{out_dir / 'partition.json'}"
        )
    return BuiltPartition(out_dir, summary)


def _label_skew_text(histograms: np.ndarray, clients: list[np.ndarray]) -> str:
    """The weighted mean label skew with 3 decimals, or why there is none."""
    skew = label_skew(histograms, clients)["js_weighted_mean"]
    return "n/a (no labels)" if skew is None else f"{skew:.3f}"
