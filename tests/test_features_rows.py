"""FileRows reads a memory-mapped cache's rows with file reads: the values of the map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fussbench.errors import FussbenchError
from fussbench.features.rows import FileRows
from fussbench.model.training import ClientData


def _cache(tmp_path: Path) -> np.memmap:
    values = np.random.default_rng(0).standard_normal((9, 4, 3, 5)).astype(np.float16)
    np.save(tmp_path / "features.npy", values)
    return np.load(tmp_path / "features.npy", mmap_mode="r")


def test_file_rows_read_what_the_map_holds(tmp_path: Path) -> None:
    mapped = _cache(tmp_path)
    rows = FileRows(mapped)
    assert rows.shape == mapped.shape and rows.dtype == mapped.dtype and len(rows) == 9
    for key in (0, 8, -1, np.int64(3), slice(2, 7), slice(None, None, 3), np.array([5, 0, 5])):
        assert np.array_equal(rows[key], mapped[key]), key
    image, y, x = np.array([8, 1, 1]), np.array([0, 2, 1]), np.array([4, 0, 3])
    assert np.array_equal(rows[image, :, y, x], mapped[image, :, y, x])
    assert np.array_equal(rows[2, 1], mapped[2, 1])
    assert np.array_equal(rows[1:4, :, 0, 0], mapped[1:4, :, 0, 0])
    with pytest.raises(IndexError):
        rows[np.array([9])]


def test_only_a_whole_map_is_read_from_its_file(tmp_path: Path) -> None:
    mapped = _cache(tmp_path)
    assert FileRows.readable(mapped)
    assert not FileRows.readable(mapped[2:])  # a view: its offset is not its first row's
    assert not FileRows.readable(np.asarray(mapped).copy())
    pooled = np.random.default_rng(1).standard_normal((9, 4)).astype(np.float32)
    from_map = ClientData.from_cache(mapped, pooled, 2, np.array([1, 4, 6, 7]))
    in_memory = ClientData.from_cache(np.array(mapped), pooled, 2, np.array([1, 4, 6, 7]))
    assert isinstance(from_map.features, FileRows)
    assert np.array_equal(from_map.neighbours, in_memory.neighbours)
    batch = np.array([3, 0, 0, 2])
    assert from_map.batch(batch).equal(in_memory.batch(batch))


def test_a_truncated_cache_names_the_file(tmp_path: Path) -> None:
    rows = FileRows(_cache(tmp_path))
    path = tmp_path / "features.npy"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(FussbenchError, match=r"features\.npy: row 8 is cut short"):
        rows[8]


def test_pixel_gather_and_iteration_read_in_chunks(tmp_path: Path) -> None:
    mapped = _cache(tmp_path)
    rows = FileRows(mapped)
    rng = np.random.default_rng(3)
    image, y, x = rng.integers(0, 9, 200), rng.integers(0, 3, 200), rng.integers(0, 5, 200)
    assert np.array_equal(rows[image, :, y, x], mapped[image, :, y, x])
    assert np.array_equal(np.stack(list(rows)), mapped)
