"""Synthetic feature caches in the real on-disk format, of any size, written in chunks.

For measuring memory and time against the number of images (``fussbench bench --scale``):
the contents are random, not features of any image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LITE0_SHAPE = (432, 15, 20)
"""(C, h, w) of one EfficientNet-Lite0 ("16+32") feature map at CamVid's 240 × 320."""

FINGERPRINT = {"synthetic": True}
"""The fingerprint a synthetic cache is written and opened with."""


def cache_nbytes(images: int, shape: tuple[int, int, int] = LITE0_SHAPE) -> int:
    """Bytes on disk of a synthetic cache of ``images`` maps (features, labels, pooled)."""
    channels, height, width = shape
    return images * (channels * height * width * 2 + height * width + channels * 4)


def write_synthetic_cache(
    directory: Path,
    images: int,
    shape: tuple[int, int, int] = LITE0_SHAPE,
    seed: int = 0,
    chunk: int = 64,
) -> None:
    """Write a cache of ``images`` views into ``directory``, readable by
    :func:`fussbench.features.cache.open_split` with :data:`FINGERPRINT`.

    - ``features.npy``: (N, C, h, w) float16, written ``chunk`` rows at a time with plain
      file writes (no memory map: this process stays small): a random block of ``chunk``
      rows repeated (each map's values are random; the file holds every byte);
    - ``labels.npy``: (N, h, w) uint8 zeros (labels at feature resolution, to keep the
      file small: training never reads them);
    - ``pooled.npy``: (N, C) float32 random, independent of the maps (distinct neighbours);
    - ``index.json``: names ``img00000``…, one view per image.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    block = rng.standard_normal((min(chunk, images), *shape), dtype=np.float32)
    block = block.astype(np.float16)
    header = {"descr": np.lib.format.dtype_to_descr(block.dtype), "fortran_order": False}
    with (directory / "features.npy").open("wb") as file:
        np.lib.format.write_array_header_1_0(file, {**header, "shape": (images, *shape)})
        for start in range(0, images, len(block)):
            file.write(block[: min(len(block), images - start)].tobytes())
    labels = np.lib.format.open_memmap(
        directory / "labels.npy", mode="w+", dtype=np.uint8, shape=(images, *shape[1:])
    )
    del labels
    np.save(directory / "pooled.npy", rng.standard_normal((images, shape[0]), dtype=np.float32))
    index = {
        "names": [f"img{n:05d}" for n in range(images)],
        "fingerprint": FINGERPRINT,
        "views_per_image": 1,
        "feature_shape": [images, *shape],
        "backbone_nbytes": 0,
    }
    (directory / "index.json").write_text(json.dumps(index) + "\n", encoding="utf-8")
