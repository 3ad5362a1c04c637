"""The timings of ``fussbench bench``: feature-caching throughput, and one local round on
cached features against the same round with the backbone recomputed on every batch; and
memory and time of a round against the number of cached images (``--scale``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from fussbench.benchmarks.rounds import benchmark_round
from fussbench.benchmarks.scale import scale_benchmark
from fussbench.benchmarks.synthetic_cache import LITE0_SHAPE
from fussbench.benchmarks.throughput import training_throughput
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.backbones import build_backbone
from fussbench.features.benchmark import benchmark_caching, decoded_images
from fussbench.features.device import resolve_placement
from fussbench.federation.build import build_method
from fussbench.model.config import PRECISIONS
from fussbench.model.precision import native_bf16
from fussbench.model.training import ClientData
from fussbench.params import Params
from fussbench.paths import raw_dir


def speed_benchmark(params: Params, images: int) -> dict[str, object]:
    """Time the first ``images`` training images of ``params.dataset``: forward, caching,
    and one local round (``train.local_steps`` batches, and what else ``aggregator`` asks
    of a client) of a client holding them."""
    if images < 1:
        raise FussbenchError(f"--images must be >= 1, got {images}")
    spec = params.dataset_spec()
    samples = spec.samples(raw_dir(spec.name), spec.train_split)[:images]
    settings = params.features
    placement = resolve_placement(settings.device, settings.precision)
    config = params.backbone_config()
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
            build_method(params.aggregator, params.federation, params.seed)[1],
            params.model.dim,
            timed_clusters(params, spec),
            params.seed,
        )
        training = _training_speed(
            np.load(cache / "features.npy"), np.load(cache / "pooled.npy"), params, spec
        )
    return {
        "dataset": spec.name,
        "backbone": params.backbone,
        **caching,
        **round_times,
        **training,
    }


def timed_clusters(params: Params, spec: DatasetSpec) -> int:
    """The number of centroids the timings use: ``model.n_clusters`` when it is a number,
    else (null, or ``auto``, whose K is only known once clients estimate it) the dataset's
    number of classes."""
    n_clusters = params.model.n_clusters
    return n_clusters if isinstance(n_clusters, int) else spec.n_classes


def _training_speed(
    features: np.ndarray, pooled: np.ndarray, params: Params, spec: DatasetSpec
) -> dict[str, object]:
    """``train_steps_per_s`` and ``train_peak_fraction`` (the steps' FLOP rate against a
    matrix product of the head's shapes, same run, threads and precision) in fp32 and bf16;
    ``train_product_share`` (the part of a step spent in matrix products),
    ``train_product_bound`` (the peak fraction if nothing else took time) and
    ``train_slowest_ops`` (the operations that take longest, each as a share of a step).
    bf16 is timed only where the CPU multiplies it natively."""
    config = params.train_config()
    data = ClientData.from_cache(features, pooled, config.knn_k)
    n_clusters = timed_clusters(params, spec)
    native = native_bf16()
    threads = torch.get_num_threads()
    torch.set_num_threads(params.runtime.threads)  # as a federate run trains
    result: dict[str, object] = {"train_threads": params.runtime.threads, "bf16_native": native}
    try:
        for precision in PRECISIONS:
            if precision == "bf16" and not native:
                continue
            speed = training_throughput(data, config, params.model.dim, n_clusters, precision)
            result[f"train_steps_per_s_{precision}"] = round(speed.steps_per_s, 2)
            result[f"train_gflops_{precision}"] = round(speed.gflops, 1)
            result[f"matmul_gflops_{precision}"] = round(speed.matmul_gflops, 1)
            result[f"train_peak_fraction_{precision}"] = round(speed.peak_fraction, 3)
            result[f"train_product_share_{precision}"] = round(speed.product_share, 3)
            result[f"train_product_bound_{precision}"] = round(speed.product_bound, 3)
            result[f"train_slowest_ops_{precision}"] = {
                name: round(share, 3) for name, share in speed.slowest_op_shares.items()
            }
    finally:
        torch.set_num_threads(threads)
    return result


def scale_record(params: Params, sizes: list[int]) -> dict[str, object]:
    """Peak RSS and seconds of one local round (``train.local_steps`` batches, one client
    holding every image) on synthetic lite0-sized caches of each of ``sizes`` images
    (:func:`~fussbench.benchmarks.scale.scale_benchmark`), with the maps' shape."""
    spec = params.dataset_spec()
    scale = scale_benchmark(
        sizes,
        params.train_config(),
        params.model.dim,
        timed_clusters(params, spec),
        params.seed,
        params.runtime.threads,
    )
    return {"feature_shape": list(LITE0_SHAPE), "scale": scale}
