"""Class colours of each dataset, and label maps painted with them."""

from __future__ import annotations

import matplotlib
import numpy as np

from fussbench.data.samples import IGNORE_INDEX

CAMVID = np.array(
    [
        (128, 128, 128),  # Sky
        (128, 0, 0),  # Building
        (192, 192, 128),  # Pole
        (128, 64, 128),  # Road
        (60, 40, 222),  # Pavement
        (128, 128, 0),  # Tree
        (192, 128, 128),  # SignSymbol
        (64, 64, 128),  # Fence
        (64, 0, 128),  # Car
        (64, 64, 0),  # Pedestrian
        (0, 128, 192),  # Bicyclist
    ],
    dtype=np.uint8,
)
"""CamVid's standard 11-class colours (SegNet), in class-index order."""

MAGNETIC_TILE = np.array([(0, 0, 0), (255, 255, 255)], dtype=np.uint8)
"""Magnetic tile: background black, defect white."""

IGNORE_COLOUR = np.array((0, 0, 0), dtype=np.uint8)
"""Colour of ignored pixels (label 255) and of any index outside the palette."""

_PALETTES = {"camvid": CAMVID, "magnetic_tile": MAGNETIC_TILE}


def palette(dataset: str, n_classes: int) -> np.ndarray:
    """Colours (n_classes, 3) uint8 of ``dataset``'s classes; a dataset without its own
    palette (or with another class count) gets evenly spaced ``tab20`` / ``viridis`` colours."""
    known = _PALETTES.get(dataset)
    if known is not None and len(known) == n_classes:
        return known.copy()
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
