"""Rows of a cached array, read only when indexed: a client's or a subset's features without
copying them out of the cache (:class:`RowView`), and a memory-mapped cache's rows read
without mapping them into memory (:class:`FileRows`)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator

import numpy as np

from fussbench.errors import FussbenchError


class RowView:
    """Rows ``rows`` of ``array`` (N, ...), as if ``array[rows]`` (n, ...) but not copied.

    ``view[key]`` reads ``array[rows[key]]`` then (a slice, an index array, or a tuple whose
    first entry selects rows: ``view[i, :, y, x]`` is ``array[rows[i], :, y, x]``).
    """

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self._array = array
        self._rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self._rows), *array.shape[1:])
        self.dtype = array.dtype

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, tuple):
            return self._array[(self._rows[key[0]], *key[1:])]
        return self._array[self._rows[key]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for row in self._rows:
            yield self._array[row]


def gather(
    read: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, rest: tuple, chunk: int = 64
) -> np.ndarray:
    """``array[(rows, *rest)]`` where ``read(r)`` gives ``array[r]`` (B, ...): each distinct
    row is read once, ``chunk`` distinct rows at a time (the pixel gather of the k-means
    reference, ``features[image, :, y, x]``, reads no more than a chunk of maps at once).

    Args:
        read: reads whole rows (B,) -> (B, ...).
        rows: (M,) row of each selected element.
        rest: the other indices: index arrays (M,) or slices.
    """
    unique, inverse = np.unique(rows, return_inverse=True)
    out = None
    for start in range(0, len(unique), chunk):
        maps = read(unique[start : start + chunk])
        chosen = np.nonzero((inverse >= start) & (inverse < start + len(maps)))[0]
        parts = tuple(index[chosen] if isinstance(index, np.ndarray) else index for index in rest)
        values = maps[(inverse[chosen] - start, *parts)]
        if out is None:
            out = np.empty((len(rows), *values.shape[1:]), dtype=values.dtype)
        out[chosen] = values
    if out is None:
        raise IndexError("no rows selected")
    return out


class FileRows:
    """The rows of a memory-mapped ``.npy`` array (N, ...), read with plain file reads.

    Same values as indexing the map, but the pages never enter this process's resident
    set: a read through a memory map maps whole page-cache folios (about 2 MB per touched
    row on recent kernels), so a client sampling random batches from a large cache would
    see its RSS climb towards the cache's size. Reads go through the page cache as usual.

    ``rows[key]``: an int gives one row (...); a slice or an index array (B, ...); a tuple
    selects rows with its first entry and indexes them with the rest.
    """

    def __init__(self, array: np.memmap) -> None:
        self.path = str(array.filename)
        self.offset = int(array.offset)
        self.shape = array.shape
        self.dtype = array.dtype
        self._row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize

    @staticmethod
    def readable(array: object) -> bool:
        """Whether ``array`` is a whole C-ordered ``np.memmap`` with a file behind it (not a
        view into one, whose offset would not be its first row's)."""
        return (
            isinstance(array, np.memmap)
            and isinstance(array.base, mmap.mmap)
            and array.filename is not None
            and array.flags.c_contiguous
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self), 32):
            yield from self._read(np.arange(start, min(start + 32, len(self))))

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as file:
            for index, row in enumerate(rows):
                target = out[index].reshape(-1).view(np.uint8)
                got = os.preadv(file.fileno(), [target], self.offset + int(row) * self._row_bytes)
                if got != self._row_bytes:
                    raise FussbenchError(
                        f"{self.path}: row {int(row)} is cut short ({got} of {self._row_bytes} "
                        "bytes); the feature cache is truncated, rerun `fussbench features`"
                    )
        return out

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, tuple):
            first, rest = key[0], key[1:]
            if isinstance(first, slice):
                return self[first][(slice(None), *rest)]
            if np.ndim(first) == 0:
                return self[first][rest]
            return gather(self._read, np.asarray(first, dtype=np.int64) % len(self), rest)
        if isinstance(key, slice):
            return self._read(np.arange(*key.indices(len(self))))
        if np.ndim(key) == 0:
            row = int(key)  # type: ignore[call-overload]
            if not -len(self) <= row < len(self):
                raise IndexError(f"row {row} out of range for {len(self)} rows")
            return self._read(np.array([row % len(self)]))[0]
        rows = np.asarray(key, dtype=np.int64)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} rows")
        return self._read(rows % len(self))
