"""The clusters of the label-free heterogeneous partition ``embedding_dirichlet``.

The embedding-based non-IID protocol of Borazjani et al. ("Redefining non-IID Data in
Federated Learning for Computer Vision Tasks: Migrating from Labels to Embeddings for
Task-Specific Data Distributions", arXiv 2503.14553): clients differ in what their images
look like to a pretrained model, not in their labels, so a user without masks can draw it.

Math: p_i (D,) is the L2-normalised global-average-pooled backbone feature of training
image i, read from the feature cache (the same pooled features the feature skew is
computed from: :func:`fussbench.features.embeddings.image_embeddings`). k-means with
n_clusters = ``partition.embedding_clusters``, :data:`N_INIT` restarts and
random_state = ``partition.seed`` on {p_i} gives each image a cluster c(i); then the
Dirichlet split of :mod:`fussbench.data.partition` divides each cluster among the K clients
by proportions ~ Dirichlet(``partition.alpha`` · 1_K), exactly as method ``dirichlet``
divides each dominant-class bucket.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from fussbench.errors import FussbenchError

N_INIT = 10
"""k-means restarts (the best inertia is kept)."""


def embedding_clusters(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """The k-means cluster c(i) of each image's embedding.

    Args:
        embeddings: (N, D) p_i, one L2-normalised pooled feature per image.
        n_clusters: number of k-means clusters (``partition.embedding_clusters``), >= 2.
        seed: k-means random state (``partition.seed``).

    Returns:
        (N,) int64 cluster of each image, in ``[0, n_clusters)``.

    Raises:
        FussbenchError: when there are fewer images than clusters, naming the param.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
    if n_clusters > len(embeddings):
        raise FussbenchError(
            f"partition.embedding_clusters={n_clusters} exceeds the {len(embeddings)} training "
            "images; lower partition.embedding_clusters"
        )
    kmeans = KMeans(n_clusters=n_clusters, n_init=N_INIT, random_state=seed)
    with warnings.catch_warnings():
        # identical images give fewer distinct points than clusters: still a valid split
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = kmeans.fit_predict(embeddings)
    return labels.astype(np.int64)
