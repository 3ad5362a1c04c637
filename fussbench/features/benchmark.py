"""Throughput of the frozen backbone: bare forward pass against end-to-end caching."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from fussbench.data.samples import DatasetSpec, Sample
from fussbench.features.backbones import BackboneConfig, DenseBackbone
from fussbench.features.cache import build_split


def decoded_images(spec: DatasetSpec, samples: list[Sample]) -> torch.Tensor:
    """All images decoded and resized: (N, 3, H, W) float in [0, 1]."""
    images = np.stack([np.asarray(spec.read_image(sample.image)) for sample in samples])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def benchmark_caching(
    spec: DatasetSpec,
    samples: list[Sample],
    config: BackboneConfig,
    backbone: DenseBackbone,
    images: torch.Tensor,
    batch_size: int,
    scratch: Path,
) -> dict[str, float]:
    """Images per second of the bare forward pass and of caching the same images.

    The forward pass runs on ``images`` (N, 3, H, W), the samples decoded beforehand, in
    batches of ``batch_size``. Caching is :func:`build_split` as the pipeline runs it:
    decode, resize, forward and write the float16 memmaps, to ``scratch / "bench"``
    (left there for the caller). One warm-up batch runs before each.
    """
    with torch.inference_mode():
        backbone(images[:batch_size])
        started = time.perf_counter()
        for start in range(0, len(images), batch_size):
            backbone(images[start : start + batch_size])
        forward_seconds = time.perf_counter() - started
    warmup = samples[:batch_size]
    build_split(spec, warmup, "warmup", config, backbone, scratch / "warmup", batch_size)
    started = time.perf_counter()
    build_split(spec, samples, "bench", config, backbone, scratch / "bench", batch_size)
    caching_seconds = time.perf_counter() - started
    count = len(samples)
    return {
        "images": count,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "forward_images_per_s": round(count / forward_seconds, 2),
        "caching_images_per_s": round(count / caching_seconds, 2),
        "caching_overhead_pct": round(100.0 * (caching_seconds / forward_seconds - 1.0), 1),
    }
