"""What a run can say about its segmentation without labels: whether a split has any, and
how many pixels each cluster takes on each client's images."""

from __future__ import annotations

import numpy as np

from fussbench.data.samples import IGNORE_INDEX
from fussbench.evaluation.predict import predict_clusters
from fussbench.model.head import CENTROIDS_KEY, ModelArrays


def has_labels(labels: np.ndarray) -> bool:
    """Whether any pixel of the label maps (N, H, W) is labelled (not ``IGNORE_INDEX``);
    reads one map at a time and stops at the first labelled one."""
    return any(bool((np.asarray(label) != IGNORE_INDEX).any()) for label in labels)


def cluster_pixels(
    arrays: ModelArrays, features: np.ndarray, size: tuple[int, int], chunk: int = 32
) -> np.ndarray:
    """Pixels predicted as each cluster over the feature maps (N, C, h, w) segmented at
    ``size`` (H, W), ``chunk`` images at a time.

    Returns:
        (n_clusters,) int64 counts.
    """
    n_clusters = arrays[CENTROIDS_KEY].shape[0]
    counts = np.zeros(n_clusters, dtype=np.int64)
    for start in range(0, len(features), chunk):
        clusters = predict_clusters(arrays, features[start : start + chunk], size)
        counts += np.bincount(clusters.ravel().astype(np.int64), minlength=n_clusters)
    return counts
