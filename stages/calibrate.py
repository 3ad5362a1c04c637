"""Stage helper ``calibrate``: mean raw feature cosine per pairing, to set the L_corr shifts.

Shifts at or below these means collapse the clusters (DESIGN.md); a new backbone needs them
measured first. Runs on the training split only, never on the evaluation split.
"""

from __future__ import annotations

import numpy as np
import torch

from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.model.losses import raw_feature_cosine, sample_unit_points
from fussbench.model.training import ClientData
from fussbench.params import Params
from fussbench.paths import features_dir


def run(params: Params, batches: int = 100) -> dict[str, float]:
    """Mean raw cosine of sampled feature points for self, kNN and random image pairs."""
    spec = params.dataset_spec()
    config = params.backbone_config()
    directory = features_dir(spec.name, params.backbone) / spec.train_split
    train = open_split(directory, cache_fingerprint(spec, spec.train_split, config))
    data = ClientData.from_cache(train.features, train.pooled, params.train.knn_k)
    rng = np.random.default_rng(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    size = params.train.feature_samples
    sums = {"self": 0.0, "knn": 0.0, "random": 0.0}
    for _ in range(batches):
        rows = rng.choice(data.n_samples, size=params.train.batch_size, replace=False)
        partners = data.neighbours[rows, rng.integers(data.neighbours.shape[1], size=len(rows))]
        strangers = rng.choice(data.n_samples, size=len(rows), replace=True)
        coords = torch.rand((len(rows), size, size, 2), generator=generator) * 2 - 1
        points = sample_unit_points(data.batch(rows), coords)
        sums["self"] += raw_feature_cosine(points, points)
        for key, other in (("knn", partners), ("random", strangers)):
            other_points = sample_unit_points(data.batch(other), coords)
            sums[key] += raw_feature_cosine(points, other_points)
    return {f"mean_cosine_{key}": round(total / batches, 4) for key, total in sums.items()}
