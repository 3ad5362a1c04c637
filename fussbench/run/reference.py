"""Reference rows without training (``kmeans``, ``kmeans_local``, ``majority``), written
in the same ``metrics.json`` / ``images.csv`` form as a federation run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fussbench.atomic import write_json, write_text
from fussbench.evaluation.predict import Evaluation
from fussbench.evaluation.reference import evaluate_kmeans, evaluate_majority
from fussbench.features.cache import FeatureSplit
from fussbench.features.rows import RowView
from fussbench.federation.cluster_count import client_cluster_count
from fussbench.params import Params
from fussbench.run.outputs import images_csv, matching_scores


def _evaluations(
    params: Params,
    train: FeatureSplit,
    evaluation: FeatureSplit,
    client_rows: list[np.ndarray],
    n_clusters: int | None,
    n_classes: int,
) -> list[Evaluation]:
    """The reference's evaluations; ``n_clusters`` None (``model.n_clusters: auto``): each
    k-means estimates its K from its own rows' features, as a client would."""
    if params.aggregator == "majority":
        return [evaluate_majority(train.labels, evaluation.labels, n_classes)]
    row_sets = client_rows if params.aggregator == "kmeans_local" else [np.concatenate(client_rows)]
    return [
        evaluate_kmeans(
            RowView(train.features, rows),
            evaluation.features,
            evaluation.labels,
            n_clusters or _estimate(params, train, rows),
            n_classes,
            params.seed,
            params.evaluation.matching,
        )
        for rows in row_sets
    ]


def _estimate(params: Params, train: FeatureSplit, rows: np.ndarray) -> int:
    """K of ``rows``' features (:func:`~fussbench.federation.cluster_count.
    client_cluster_count`, pixels drawn with the run's seed)."""
    return client_cluster_count(train.features, rows, tuple(params.model.k_range), params.seed)


def run(
    params: Params,
    out_dir: Path,
    train: FeatureSplit,
    evaluation: FeatureSplit,
    client_rows: list[np.ndarray],
    common: dict[str, object],
) -> dict[str, object]:
    """Score the reference method ``params.aggregator`` and write its outputs."""
    started = time.perf_counter()
    spec = params.dataset_spec()
    n_clusters = None if params.model.auto else params.model.n_clusters or spec.n_classes
    final = _evaluations(params, train, evaluation, client_rows, n_clusters, spec.n_classes)
    owners = [f"client{n}" for n in range(len(final))] if len(final) > 1 else ["global"]
    metrics = {
        **common,
        "miou": round(float(np.mean([item.scores.miou for item in final])), 4),
        "accuracy": round(float(np.mean([item.scores.accuracy for item in final])), 4),
        "models": [
            {"model": owner, **item.scores.as_dict(spec.class_names)}
            for owner, item in zip(owners, final, strict=True)
        ],
        "n_clusters_final": [len(item.confusion) for item in final],
        **matching_scores(final),
        "seconds": round(time.perf_counter() - started, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    image_miou = np.mean([item.image_miou for item in final], axis=0)
    write_text(out_dir / "images.csv", images_csv(evaluation.names, image_miou))
    write_json(out_dir / "metrics.json", metrics)
    return metrics
