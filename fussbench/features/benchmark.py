"""Throughput of the frozen backbone: bare forward pass against end-to-end caching."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fussbench.data.samples import DatasetSpec, Sample
from fussbench.features.backbones import BackboneConfig, DenseBackbone
from fussbench.features.cache import build_split
from fussbench.features.device import Placement
from fussbench.features.views import Preprocessing


def decoded_images(
    spec: DatasetSpec, samples: list[Sample], preprocessing: Preprocessing
) -> torch.Tensor:
    """The training views of ``samples``, as the cache computes them: (N * V, 3, H, W)
    uint8, each image's V views consecutive."""
    views = [
        np.asarray(view)
        for sample in samples
        for view in preprocessing.views(
            spec.open_image(sample.image), True, Image.Resampling.BICUBIC, spec.fit
        )
    ]
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).contiguous()


def _synchronise(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize(placement.device)


def benchmark_caching(
    spec: DatasetSpec,
    samples: list[Sample],
    config: BackboneConfig,
    backbone: DenseBackbone,
    images: torch.Tensor,
    batch_size: int,
    scratch: Path,
    placement: Placement,
    loader_workers: int = 0,
) -> dict[str, float]:
    """Images per second of the bare forward pass and of caching the same images.

    The forward pass runs on ``images`` (N, 3, H, W) uint8, the samples decoded
    beforehand and already on the device, in batches of ``batch_size``. Caching is
    :func:`build_split` as the pipeline runs it: decode, resize, copy to the device,
    forward and write the float16 memmaps, to ``scratch / "bench"`` (left there for the
    caller). One warm-up batch runs before each.
    """
    # the memory layout caching uses (see ``forward_batch``), so both time the same kernels
    on_device = images.to(placement.device).contiguous(memory_format=torch.channels_last)
    dtype = placement.autocast_dtype
    autocast = torch.autocast(placement.device.type, dtype=dtype, enabled=dtype is not None)
    with torch.inference_mode(), autocast:
        backbone(on_device[:batch_size].float().div_(255.0))
        _synchronise(placement)
        started = time.perf_counter()
        for start in range(0, len(images), batch_size):
            backbone(on_device[start : start + batch_size].float().div_(255.0))
        _synchronise(placement)
        forward_seconds = time.perf_counter() - started
    del on_device
    warmup = samples[:batch_size]
    arguments = (config, backbone)
    build_split(spec, warmup, "warmup", *arguments, scratch / "warmup", batch_size, placement)
    started = time.perf_counter()
    build_split(
        spec, samples, "bench", *arguments, scratch / "bench", batch_size, placement, loader_workers
    )
    caching_seconds = time.perf_counter() - started
    count = len(samples)
    return {
        "images": count,
        "batch_size": batch_size,
        "device": placement.device.type,
        "precision": placement.precision,
        "threads": torch.get_num_threads(),
        "forward_images_per_s": round(count / forward_seconds, 2),
        "caching_images_per_s": round(count / caching_seconds, 2),
        "caching_overhead_pct": round(100.0 * (caching_seconds / forward_seconds - 1.0), 1),
    }
