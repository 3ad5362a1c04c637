"""Some rows of a cached array, read only when indexed: a client's or a subset's features
without copying them out of the cache's memory map."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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
