"""Predicted masks a person can look at: what an unlabelled run shows instead of a score.

For each previewed image, ``<name>.png`` holds the predicted cluster of every pixel as a
palette PNG (the pixel value is the cluster index, the palette colours it) and
``<name>_overlay.png`` blends those colours over the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fussbench.atomic import atomic_path
from fussbench.evaluation.predict import predict_clusters
from fussbench.model.head import ModelArrays
from fussbench.reporting.palettes import colourise

OVERLAY_ALPHA = 0.45
"""Weight of the cluster colour in an overlay (the image keeps the rest)."""


def cluster_png(clusters: np.ndarray, colours: np.ndarray) -> Image.Image:
    """A palette image of cluster indices (H, W): values are the indices, colours (K, 3)."""
    image = Image.fromarray(np.asarray(clusters, dtype=np.uint8), "P")
    image.putpalette(np.asarray(colours, dtype=np.uint8).ravel().tolist())
    return image


def overlay(image: np.ndarray, clusters: np.ndarray, colours: np.ndarray) -> Image.Image:
    """The image (H, W, 3) uint8 with each pixel's cluster colour blended over it."""
    painted = colourise(clusters, colours).astype(np.float32)
    blended = (1 - OVERLAY_ALPHA) * np.asarray(image, np.float32) + OVERLAY_ALPHA * painted
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8), "RGB")


def _save(image: Image.Image, target: Path) -> Path:
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG")
    return target


def write_previews(
    folder: Path,
    names: list[str],
    images: list[np.ndarray],
    arrays: ModelArrays,
    features: np.ndarray,
    colours: np.ndarray,
) -> list[Path]:
    """Segment ``features`` (N, C, h, w) with the model and write each image's predicted
    mask and overlay into ``folder`` (a name's folders become subfolders).

    Args:
        names: the N image names.
        images: the N images (H, W, 3) uint8, as the features saw them.
        colours: (n_clusters, 3) uint8 colour of each cluster.

    Returns:
        The written files, two per image.
    """
    if not names:
        return []
    size = images[0].shape[:2]
    clusters = predict_clusters(arrays, features, (int(size[0]), int(size[1])))
    written = []
    for name, image, mask in zip(names, images, clusters, strict=True):
        written.append(_save(cluster_png(mask, colours), folder / f"{name}.png"))
        written.append(_save(overlay(image, mask, colours), folder / f"{name}_overlay.png"))
    return written
