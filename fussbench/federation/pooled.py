"""The pooled centroids' arithmetic that several server rules share: the pool itself, its
canonical (client-order independent) order, the clients' pixel counts in pool order and
rows scaled to unit length.

Shapes: a pool stacks every client's centroids, (sum_k n_clusters_k, dim), client 0's
first; its counts line up with its rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate

EPS = 1e-12
"""The smallest norm :func:`unit_rows` divides by (a zero row stays zero)."""


def pool_counts(updates: Sequence[ClientUpdate]) -> np.ndarray:
    """(sum of the clients' n_clusters,) float64 cluster counts in pool order."""
    missing = [index for index, update in enumerate(updates) if update.cluster_counts is None]
    if missing:
        raise FussbenchError(
            f"client {missing[0]} sent no cluster_counts; this aggregator needs them from "
            "every client (clients send them when LocalObjective.cluster_counts is set)"
        )
    counts = [np.asarray(update.cluster_counts, dtype=np.float64) for update in updates]
    for index, (client_counts, update) in enumerate(zip(counts, updates, strict=True)):
        expected = len(update.centroids)
        if client_counts.shape != (expected,) or (client_counts < 0).any():
            raise FussbenchError(
                f"client {index}: cluster_counts must be {expected} non-negative counts "
                f"(one per centroid), got shape {client_counts.shape}"
            )
    return np.concatenate(counts)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, EPS)


def pool_centroids(updates: Sequence[ClientUpdate], n_clusters: int) -> np.ndarray:
    """(sum of the clients' K_k, dim) float64: every client's centroids, client by client
    (K * n_clusters rows when every client has n_clusters)."""
    pool = np.concatenate([update.centroids for update in updates]).astype(np.float64)
    if n_clusters > len(pool):
        raise FussbenchError(
            f"cannot choose {n_clusters} centroids from a pool of {len(pool)} "
            "(params: model.n_clusters)"
        )
    return pool


def canonical_order(pool: np.ndarray) -> np.ndarray:
    """(N,) indices that sort the rows of (N, D) ``pool`` lexicographically."""
    return np.lexsort(pool.T[::-1])
