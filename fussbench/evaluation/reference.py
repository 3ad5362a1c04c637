"""Reference rows that need no training: k-means on frozen features and the majority class.

They show whether a trained method learns anything: a federated model should beat cosine
k-means fitted directly on the backbone features, and every method should beat predicting the
training split's most frequent class everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.cluster import KMeans

from fussbench.data.samples import IGNORE_INDEX
from fussbench.errors import FussbenchError
from fussbench.evaluation.metrics import (
    confusion_matrix,
    per_image_miou,
    scores_from_confusion,
)
from fussbench.evaluation.predict import (
    Evaluation,
    cluster_maps,
    evaluate_clusters,
    iter_cluster_maps,
)
from fussbench.model.losses import assign_clusters


def _normalise_rows(rows: np.ndarray) -> np.ndarray:
    """L2-normalise each row of a (M, C) array (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def kmeans_centroids(
    features: np.ndarray, n_clusters: int, seed: int, max_pixels: int = 40_000
) -> np.ndarray:
    """Cosine k-means on pixel features.

    Every pixel's feature vector is L2-normalised, at most ``max_pixels`` of them are drawn
    uniformly without replacement (``numpy.random.default_rng(seed)``) and clustered with
    ``sklearn.cluster.KMeans(n_clusters, n_init=3, random_state=seed)`` in Elkan's variant:
    Lloyd's iterations with fewer distance computations (float rounding may still differ
    from plain Lloyd's).

    Args:
        features: (N, C, h, w) cached features (any float dtype).
        n_clusters: number of clusters, at least 2.
        seed: seed of the pixel subsample and of k-means.
        max_pixels: most pixels to cluster.

    Returns:
        (n_clusters, C) float32 L2-normalised cluster centres.

    Raises:
        FussbenchError: ``n_clusters`` < 2 or above the number of sampled pixels.
    """
    n_images, _, height, width = features.shape
    n_pixels = n_images * height * width
    n_sampled = min(n_pixels, max_pixels)
    if n_clusters < 2 or n_clusters > n_sampled:
        raise FussbenchError(
            f"model.n_clusters must be between 2 and the {n_sampled} sampled pixels "
            f"for the k-means reference, got {n_clusters}"
        )
    rng = np.random.default_rng(seed)
    flat = np.sort(rng.choice(n_pixels, size=n_sampled, replace=False))
    image, row, column = np.unravel_index(flat, (n_images, height, width))
    # gather only the sampled pixels, so a large (or memory-mapped) cache is never copied whole
    pixels = np.asarray(features[image, :, row, column], dtype=np.float32)
    kmeans = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed, algorithm="elkan")
    kmeans.fit(_normalise_rows(pixels))
    return _normalise_rows(kmeans.cluster_centers_).astype(np.float32)


def predict_with_centroids(
    features: np.ndarray, centroids: np.ndarray, size: tuple[int, int], batch_size: int = 32
) -> np.ndarray:
    """Cluster of every pixel: most cosine-similar centroid, similarities upsampled to ``size``.

    Same rule as :func:`fussbench.evaluation.predict.predict_clusters`, without a head.

    Args:
        features: (N, C, h, w) cached features (any float dtype).
        centroids: (K, C) cluster centres.
        size: (H, W) of the labels.
        batch_size: images per batch, bounding memory.

    Returns:
        (N, H, W) uint8 cluster indices (int16 if there are over 255 clusters).
    """
    return cluster_maps(features, _centroid_scores(centroids), len(centroids), size, batch_size)


def _centroid_scores(centroids: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """Cosine similarities (B, K, h, w) of a batch (B, C, h, w) to centroids (K, C)."""
    centres = torch.from_numpy(np.asarray(centroids, dtype=np.float32))
    return lambda batch: assign_clusters(batch, centres)


def evaluate_kmeans(
    train_features: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    n_clusters: int,
    n_classes: int,
    seed: int,
    matching: str = "hungarian",
) -> Evaluation:
    """Fit cosine k-means on training features and score it on a labelled split.

    Args:
        train_features: (N_train, C, h, w) features the centroids are fitted on.
        eval_features: (N, C, h, w) features to segment.
        eval_labels: (N, H, W) uint8 labels (255 ignored).
        n_clusters: number of k-means clusters.
        n_classes: number of classes of the dataset.
        seed: seed of the pixel subsample and of k-means.
        matching: how clusters map to classes (``evaluation.matching``).

    Returns:
        The :class:`Evaluation` after matching over the whole split.
    """
    centroids = kmeans_centroids(train_features, n_clusters, seed)
    scores = _centroid_scores(centroids)
    clusters = iter_cluster_maps(eval_features, scores, n_clusters, eval_labels.shape[1:])
    return evaluate_clusters(clusters, eval_labels, n_clusters, n_classes, matching)


def majority_class(train_labels: np.ndarray, n_classes: int, chunk: int = 64) -> int:
    """Most frequent class among the labelled pixels (ties: the lowest class index).

    Args:
        train_labels: (N, H, W) uint8 labels, 255 ignored, read ``chunk`` maps at a time.
        n_classes: number of classes of the dataset.

    Raises:
        FussbenchError: no pixel is labelled.
    """
    counts = np.zeros(n_classes, dtype=np.int64)
    for start in range(0, len(train_labels), chunk):
        labels = np.asarray(train_labels[start : start + chunk]).ravel()
        more = np.bincount(labels[labels != IGNORE_INDEX], minlength=len(counts))
        counts = np.pad(counts, (0, len(more) - len(counts))) + more
    if counts.sum() == 0:
        raise FussbenchError(
            "the training labels have no labelled pixel (all 255), so there is no majority class"
        )
    return int(counts.argmax())


def evaluate_majority(
    train_labels: np.ndarray, eval_labels: np.ndarray, n_classes: int
) -> Evaluation:
    """Score predicting the training split's majority class on every evaluation pixel.

    There is no matching on the evaluation split: the single "cluster" maps to the training
    majority class.

    Args:
        train_labels: (N_train, H, W) uint8 labels the majority is taken from.
        eval_labels: (N, H, W) uint8 labels to score against.
        n_classes: number of classes of the dataset.

    Returns:
        An :class:`Evaluation` with a (1, n_classes) confusion and mapping ``[majority]``.
    """
    mapping = np.array([majority_class(train_labels, n_classes)], dtype=np.int64)
    image_confusions = np.stack(
        [confusion_matrix(np.zeros_like(labels), labels, 1, n_classes) for labels in eval_labels]
    )
    confusion = image_confusions.sum(axis=0)
    return Evaluation(
        scores=scores_from_confusion(confusion, mapping),
        mapping=mapping,
        confusion=confusion,
        image_miou=per_image_miou(image_confusions, mapping),
        cluster_pixels=np.array([np.prod(eval_labels.shape)], dtype=np.int64),
    )
