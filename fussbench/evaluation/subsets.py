"""Which images to score when a split is scored only in part."""

from __future__ import annotations

import numpy as np


def evenly_spaced(count: int, wanted: int | None) -> np.ndarray:
    """Indices (k,) int64 of at most ``wanted`` of ``count`` items, evenly spaced and in
    order, the first and last included; all ``count`` when ``wanted`` is None or larger."""
    if wanted is None or count <= wanted:
        return np.arange(count, dtype=np.int64)
    return np.linspace(0, count - 1, wanted).round().astype(np.int64)
