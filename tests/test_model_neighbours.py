"""Chunked top-k neighbours give exactly the dense argsort's lists, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from fussbench.model import neighbours as module
from fussbench.model.neighbours import nearest_neighbours, smallest_first


def _dense(pooled: np.ndarray, k: int) -> np.ndarray:
    """The former implementation: the whole similarity matrix, every row argsorted."""
    count = pooled.shape[0]
    if count == 1:
        return np.zeros((1, 1), dtype=np.int64)
    unit = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")
    return order[:, : min(k, count - 1)].astype(np.int64)


def _exact_ties(count: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """(count, channels) float32 rows drawn from 12 unit vectors with four entries of ±0.5:
    every dot product is exact in float32 whatever the summation order, so duplicate rows
    and equal similarities tie exactly in any product."""
    base = np.zeros((12, channels), dtype=np.float32)
    for row in base:
        row[rng.choice(channels, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return base[rng.integers(0, 12, count)]


@pytest.mark.parametrize("k", [1, 3, 7, 39, 40])
def test_smallest_first_is_a_stable_argsort_with_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    values = rng.integers(0, 4, (30, 40)).astype(np.float32)  # many ties in every row
    values[0, 5] = np.inf
    values[1, :] = 2.0  # a row of one value
    expected = np.argsort(values, axis=1, kind="stable")[:, :k]
    assert np.array_equal(smallest_first(values, k), expected)
    values[2, 7] = np.nan  # NaN sorts last, as in argsort
    assert np.array_equal(smallest_first(values, k), np.argsort(values, 1, kind="stable")[:, :k])


@pytest.mark.parametrize("data", ["random", "ties"])
@pytest.mark.parametrize("dense_rows", [module.DENSE_ROWS, 0])
def test_neighbours_equal_the_dense_argsort(
    data: str, dense_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole-matrix path (the default size) and row-block path, several blocks each.

    The block path's products may differ from the whole matrix's by about 1e-7, so on random
    data only the first few neighbours are compared there (a full ordering of 499 random
    similarities has near-ties that close); exactly tied data is compared in full."""
    monkeypatch.setattr(module, "BLOCK_ELEMENTS", 7 * 500)  # blocks of 7 rows
    rng = np.random.default_rng(0)
    if data == "random":
        pooled = rng.standard_normal((500, 48)).astype(np.float32)
    else:
        pooled = _exact_ties(500, 48, rng)
        pooled[10] = 0.0  # a zero row: similarity 0 to everything
    full = dense_rows > 0 or data == "ties"
    for k in (1, 5, 7, 499, 600) if full else (1, 5, 7):
        got = nearest_neighbours(pooled, k, dense_rows=dense_rows)
        assert got.dtype == np.int64
        assert np.array_equal(got, _dense(pooled, k)), k


def test_ties_go_to_the_lower_index() -> None:
    pooled = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    for dense_rows in (module.DENSE_ROWS, 0):
        got = nearest_neighbours(pooled, 3, dense_rows=dense_rows)
        assert got.tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    assert nearest_neighbours(pooled[:1], 5).tolist() == [[0]]
