"""``fussbench bench``: feature-caching throughput, and one local round on cached features
against the same round with the backbone recomputed on every batch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.features.backbones import build_backbone
from fussbench.features.benchmark import benchmark_caching, decoded_images
from fussbench.features.device import resolve_placement
from fussbench.federation.registry import FederationSettings, build_method
from fussbench.federation.round_benchmark import benchmark_round
from fussbench.params import Params
from stages.features import backbone_config
from stages.paths import raw_dir


def run(params: Params, images: int) -> dict[str, object]:
    """Time the first ``images`` training images of ``params.dataset``: forward, caching,
    and one local round (``train.local_steps`` batches, and what else ``aggregator`` asks
    of a client) of a client holding them."""
    if images < 1:
        raise FussbenchError(f"--images must be >= 1, got {images}")
    spec = params.dataset_spec()
    samples = spec.samples(raw_dir(spec.name), spec.train_split)[:images]
    settings = params.features
    placement = resolve_placement(settings.device, settings.precision)
    config = backbone_config(params)
    backbone = build_backbone(config).to(placement.device)
    decoded = decoded_images(spec, samples, config.preprocessing)
    with tempfile.TemporaryDirectory() as scratch:
        caching = benchmark_caching(
            spec,
            samples,
            config,
            backbone,
            decoded,
            settings.batch_size,
            Path(scratch),
            placement,
            settings.loader_workers,
        )
        cache = Path(scratch) / "bench"
        round_times = benchmark_round(
            backbone,
            placement,
            decoded,
            np.load(cache / "features.npy"),
            np.load(cache / "pooled.npy"),
            params.train_config(),
            build_method(
                params.aggregator, FederationSettings.from_params(params.federation), params.seed
            )[1],
            params.model.dim,
            params.model.n_clusters or spec.n_classes,
            params.seed,
        )
    return {"dataset": spec.name, "backbone": params.backbone, **caching, **round_times}
