"""Per-client nearest-neighbour lists for the kNN pairing of the correspondence loss.

Memory is O(N · block), not O(N²): the top k of each row are selected a block of rows at a
time, without sorting whole rows. Up to :data:`DENSE_ROWS` images the similarity matrix is
still computed in one product (at most 64 MB), exactly as before; above that it is computed
a block of rows at a time too. A block's product may round differently from the whole
matrix's (by about 1e-7: BLAS picks its kernels by shape), so above :data:`DENSE_ROWS` an
image whose neighbours are that close to a tie may list them in another order than a
whole-matrix product would; the selection rule itself is the same everywhere.
"""

from __future__ import annotations

import numpy as np

DENSE_ROWS = 4096
"""Up to this many images the (N, N) float32 similarity matrix is computed whole."""

BLOCK_ELEMENTS = 1 << 22
"""Similarities selected at once: a block holds about this many (N, rows) entries."""


def smallest_first(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices (M, k) of the k smallest entries of each row of ``values`` (M, N).

    Exactly ``np.argsort(values, axis=1, kind="stable")[:, :k]``: ascending, equal values in
    column order, NaN last; but in O(M · N) time and without an (M, N) int64 sort.
    """
    rows, columns = values.shape
    if k >= columns or np.isnan(values).any():
        return np.argsort(values, axis=1, kind="stable")[:, :k]
    threshold = np.partition(values, k - 1, axis=1)[:, k - 1 : k]  # (M, 1): the k-th value
    below = values < threshold
    tied = values == threshold
    room = k - below.sum(axis=1, keepdims=True)  # tied entries that still fit, lowest first
    keep = below | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
    chosen = np.nonzero(keep)[1].reshape(rows, k)  # ascending column order within each row
    order = np.argsort(np.take_along_axis(values, chosen, axis=1), axis=1, kind="stable")
    return np.take_along_axis(chosen, order, axis=1)


def nearest_neighbours(pooled: np.ndarray, k: int, dense_rows: int = DENSE_ROWS) -> np.ndarray:
    """Top-k most similar other images by cosine similarity of pooled features.

    Called on ONE client's own images only: a neighbour list never spans clients. Ties go
    to the lower index (a stable sort of the negated similarities).

    Args:
        pooled: (N, C) global-average-pooled features of one client's images.
        k: neighbours per image; capped at N - 1 (an image with no other image in its
            client is its own neighbour).
        dense_rows: up to this N the similarity matrix is one product (see the module
            docstring).

    Returns:
        (N, min(k, N - 1) or 1) int64 row indices into ``pooled``, most similar first.
    """
    count = pooled.shape[0]
    if count == 1:
        return np.zeros((1, 1), dtype=np.int64)
    unit = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    k = min(k, count - 1)
    whole = None
    if count <= dense_rows:
        whole = unit @ unit.T
        np.fill_diagonal(whole, -np.inf)
    block = max(1, BLOCK_ELEMENTS // count)
    neighbours = np.empty((count, k), dtype=np.int64)
    for start in range(0, count, block):
        stop = min(start + block, count)
        if whole is not None:
            similarity = whole[start:stop]
        else:
            similarity = unit[start:stop] @ unit.T  # (rows, N)
            similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        neighbours[start:stop] = smallest_first(-similarity, k)
    return neighbours
