"""Class colours of each dataset, and label maps painted with them."""

from __future__ import annotations

import matplotlib
import numpy as np

from fussbench.data.registry import DATASETS
from fussbench.data.samples import IGNORE_INDEX

IGNORE_COLOUR = np.array((0, 0, 0), dtype=np.uint8)
"""Colour of ignored pixels (label 255) and of any index outside the palette."""


def palette(dataset: str, n_classes: int) -> np.ndarray:
    """Colours (n_classes, 3) uint8 of ``dataset``'s classes (its spec's ``colours``); a
    dataset without its own (or with another class count) gets evenly spaced ``tab20`` /
    ``viridis`` colours."""
    spec = DATASETS.get(dataset)
    known = spec.colours if spec is not None else None
    if known is not None and len(known) == n_classes:
        return np.array(known, dtype=np.uint8)
    cmap = matplotlib.colormaps["tab20" if n_classes <= 20 else "viridis"]
    positions = np.arange(n_classes) / 20 if n_classes <= 20 else np.linspace(0, 1, n_classes)
    return (np.asarray(cmap(positions))[:, :3] * 255).round().astype(np.uint8)


def colourise(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Paint class indices (H, W) with ``colours`` (K, 3): returns (H, W, 3) uint8; label
    :data:`~fussbench.data.samples.IGNORE_INDEX` and any index outside ``[0, K)`` are black."""
    labels = np.asarray(labels)
    valid = (labels >= 0) & (labels < len(colours)) & (labels != IGNORE_INDEX)
    image = np.empty((*labels.shape, 3), dtype=np.uint8)
    image[...] = IGNORE_COLOUR
    image[valid] = colours[labels[valid].astype(np.int64)]
    return image
