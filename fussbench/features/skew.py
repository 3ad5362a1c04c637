"""Feature skew between clients: how far apart their images look to the frozen backbone.

Label skew (the mean Jensen-Shannon divergence of the clients' class histograms, in
:mod:`fussbench.data.partition`) needs labels; this measure needs only the cached pooled
features, so it also describes unlabelled data and a domain split whose label histograms
look alike.

Math: with p_i (C,) the L2-normalised global-average-pooled feature of image i and
m_k = mean of p_i over client k's images, the feature skew is the mean over clients of
1 − cos(m_k, m), where m is the mean of p_i over all clients' images. 0 means every client's
average image looks like the whole federation's; it grows as clients drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(..., C) vectors along the last axis scaled to unit length (zero vectors stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def feature_skew(pooled: np.ndarray, client_rows: Sequence[np.ndarray]) -> dict[str, object]:
    """Feature skew of a partition.

    Args:
        pooled: (N, C) pooled features of the training split.
        client_rows: each client's rows of ``pooled`` (K arrays).

    Returns:
        ``{"cosine_mean": float, "cosine_per_client": [K floats], "n_clients": K}``.
    """
    unit = unit_rows(np.asarray(pooled, dtype=np.float64))
    everyone = unit_rows(unit[np.concatenate(client_rows)].mean(axis=0))
    per_client = [
        1.0 - float(unit_rows(unit[rows].mean(axis=0)) @ everyone) for rows in client_rows
    ]
    return {
        "cosine_mean": float(np.mean(per_client)),
        "cosine_per_client": per_client,
        "n_clients": len(client_rows),
    }
