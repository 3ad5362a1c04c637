"""Features of noise images, for the fault scenario ``noise_images``: a client that trains
honestly on useless data (:mod:`fussbench.federation.faults`).

The client keeps its image count; each of its cached views is replaced by the backbone's
features of an image of uniform noise of the same size, drawn from the run's seed. The
training split is then held in memory (the cache's float16 features and float32 pooled
vectors), which is fine for CamVid-sized setups.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from fussbench.features.cache import FeatureSplit, forward_batch
from fussbench.features.config import BackboneConfig
from fussbench.features.device import resolve_placement

NOISE_STREAM = 5
"""Second entry of the noise images' seed sequence, ``(seed, NOISE_STREAM)``."""


def with_noise_images(
    train: FeatureSplit, rows: np.ndarray, config: BackboneConfig, seed: int, batch_size: int = 16
) -> FeatureSplit:
    """``train`` with the features and pooled vectors of ``rows`` replaced by those of
    uniform-noise images.

    Math: image i of the replaced rows has pixels ~ U{0..255} (3, s h, s w), s the
    backbone's stride and (h, w) the cached maps' size, drawn from
    ``default_rng(SeedSequence([seed, NOISE_STREAM]))`` in row order; its features are the
    backbone's (C, h, w) maps (stored float16 like the cache) and their spatial mean.

    Args:
        train: the training split (features (N, C, h, w) float16, pooled (N, C) float32).
        rows: (M,) the rows to replace (a client's rows).
        config: the backbone the cache was built with.
        seed: the run's seed.
        batch_size: images per forward pass.

    Returns:
        A split with the same names, labels and shapes, held in memory.
    """
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    placement = resolve_placement("cpu", "fp32")
    backbone = build_backbone(config).to(placement.device).eval()
    features = np.array(train.features[np.arange(len(train.features))])
    pooled = np.array(train.pooled, dtype=np.float32)
    height, width = features.shape[2] * backbone.stride, features.shape[3] * backbone.stride
    rng = np.random.default_rng(np.random.SeedSequence([seed, NOISE_STREAM]))
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        chosen = rows[start : start + batch_size]
        images = rng.integers(0, 256, size=(len(chosen), 3, height, width), dtype=np.uint8)
        maps = forward_batch(backbone, torch.from_numpy(images), placement)
        features[chosen] = maps.numpy().astype(features.dtype)
        pooled[chosen] = maps.mean(dim=(2, 3)).numpy()
    return dataclasses.replace(train, features=features, pooled=pooled)
