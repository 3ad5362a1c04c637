"""Each training image's embedding, from the feature cache: what the label-free partition
``embedding_dirichlet`` clusters (:mod:`fussbench.data.embedding_partition`).

One source: the embeddings come from the cache's ``pooled.npy``, the global-average-pooled
backbone features from which :func:`fussbench.features.skew.feature_skew` measures a
partition's feature skew (in the partition stage, and in every run's ``metrics.json``).

Math: with V views per image (5 under ``features.preprocess: stego``, else 1) and
g_{i,v} (C,) the pooled feature of view v of image i,
p_i = u(mean_v u(g_{i,v})), u(x) = x / ||x||_2; with one view, p_i = u(g_i).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.cache import FeatureSplit, cache_fingerprint, open_split
from fussbench.features.config import BackboneConfig
from fussbench.features.skew import unit_rows


def open_training_features(
    spec: DatasetSpec, config: BackboneConfig, directory: Path, method: str
) -> FeatureSplit:
    """The cached training split of ``spec`` in ``directory``, checked against ``config``.

    Args:
        method: the partition method that needs it, for the error message.

    Raises:
        FussbenchError: when no cache is there, naming the command that writes it; or
            (:func:`~fussbench.features.cache.open_split`) when it was built with other params.
    """
    if not (directory / "index.json").is_file():
        raise FussbenchError(
            f"partition.method '{method}' clusters the training images' pooled backbone "
            f"features, and {directory} holds no feature cache; run `fussbench features "
            f"--dataset {spec.name}` first (backbone {config.name}), then partition again"
        )
    return open_split(directory, cache_fingerprint(spec, spec.train_split, config))


def image_embeddings(split: FeatureSplit, names: Sequence[str]) -> np.ndarray:
    """p_i of each named image (see the module's docstring).

    Args:
        split: the cached training split (``pooled`` (N' · V, C) float32).
        names: the N images, in the order wanted.

    Returns:
        (N, C) float64 unit rows, one per name.

    Raises:
        FussbenchError: naming the first image missing from the cache.
    """
    rows = split.rows(list(names)).reshape(len(names), split.views)
    views = unit_rows(np.asarray(split.pooled, dtype=np.float64)[rows])
    return unit_rows(views.mean(axis=1))
