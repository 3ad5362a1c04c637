"""Per-block L2 clipping of a client's update.

Shapes: a model is named float32 arrays, ``head.*`` (any shapes) and ``centroids``
(n_clusters, dim). A client's update against the global model it received (theta_g, mu_g)
has two blocks, each flattened into one vector:

    head block       Delta_h = concat over every head.* key of vec(theta_k - theta_g), (d_h,)
    centroid block   Delta_c = vec(mu_k - mu_g),                               (n_clusters * dim,)

Each block is clipped on its own, clip(Delta, C) = Delta * min(1, C / ||Delta||_2), with
C_h = ``privacy.clip_head`` and C_c = ``privacy.clip_centroids``: after clipping
||Delta_h|| <= C_h and ||Delta_c|| <= C_c whatever the client's data. The centroid block is
the centroids' *change*, like the head's, so a client that barely moved its centroids
spends little of C_c. Deltas are float64; norms sum the keys in sorted order, so both
engines get the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.params import PrivacyParams

HEAD = "head"
CENTROIDS = "centroids"
BLOCKS = (HEAD, CENTROIDS)
"""The two blocks of an update, each clipped (and noised) with its own bound."""


def block_of(key: str) -> str:
    """The block of array ``key``: :data:`HEAD` for ``head.*``, :data:`CENTROIDS` for
    ``centroids``.

    Raises:
        FussbenchError: any other key (a model holds nothing else).
    """
    if key.startswith("head."):
        return HEAD
    if key == CENTROIDS_KEY:
        return CENTROIDS
    raise FussbenchError(f"array '{key}' belongs to no privacy block (head.* or centroids)")


def bounds(privacy: PrivacyParams) -> dict[str, float]:
    """C_b of each block: ``{"head": privacy.clip_head, "centroids": privacy.clip_centroids}``."""
    return {HEAD: privacy.clip_head, CENTROIDS: privacy.clip_centroids}


def clip(vector: np.ndarray, bound: float) -> np.ndarray:
    """``vector * min(1, bound / ||vector||_2)``: unchanged when its norm is at most
    ``bound``, else scaled to norm ``bound`` (any shape; the norm is over every entry)."""
    norm = float(np.linalg.norm(vector))
    return vector if norm <= bound else vector * (bound / norm)


def clipped_delta(
    arrays: ModelArrays, received: ModelArrays, block_bounds: Mapping[str, float]
) -> ModelArrays:
    """A client's update as clipped per-block deltas.

    Args:
        arrays: the client's trained model (the keys and shapes of ``received``).
        received: the global model it started the round from.
        block_bounds: C_b of each block (:func:`bounds`).

    Returns:
        float64 ``arrays[key] - received[key]`` for every key, each block scaled by
        min(1, C_b / ||Delta_b||_2), the block's norm taken over all its keys together.

    Raises:
        FussbenchError: keys or shapes that differ from ``received``.
    """
    if set(arrays) != set(received):
        raise FussbenchError(
            f"an update's arrays {sorted(arrays)} differ from the global model's "
            f"{sorted(received)}; privacy clips the change of every array"
        )
    deltas: dict[str, np.ndarray] = {}
    for key in sorted(received):
        if np.shape(arrays[key]) != np.shape(received[key]):
            raise FussbenchError(
                f"array '{key}' has shape {np.shape(arrays[key])}, the global model's "
                f"{np.shape(received[key])}; privacy clips the change of every array"
            )
        deltas[key] = np.asarray(arrays[key], np.float64) - np.asarray(received[key], np.float64)
    for block, bound in block_bounds.items():
        keys = [key for key in deltas if block_of(key) == block]
        norm = float(np.sqrt(sum(float(np.sum(deltas[key] ** 2)) for key in keys)))
        if norm > bound:
            for key in keys:
                deltas[key] = deltas[key] * (bound / norm)
    return deltas
