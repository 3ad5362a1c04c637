"""Per-client nearest-neighbour lists for the kNN pairing of the correspondence loss."""

from __future__ import annotations

import numpy as np


def nearest_neighbours(pooled: np.ndarray, k: int) -> np.ndarray:
    """Top-k most similar other images by cosine similarity of pooled features.

    Called on ONE client's own images only: a neighbour list never spans clients.

    Args:
        pooled: (N, C) global-average-pooled features of one client's images.
        k: neighbours per image; capped at N - 1 (an image with no other image in its
            client is its own neighbour).

    Returns:
        (N, min(k, N - 1) or 1) int64 row indices into ``pooled``, most similar first.
    """
    count = pooled.shape[0]
    if count == 1:
        return np.zeros((1, 1), dtype=np.int64)
    unit = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, count - 1)
    order = np.argsort(-similarity, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)
