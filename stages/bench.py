"""``fussbench bench``: feature-caching throughput on the downloaded training split."""

from __future__ import annotations

from fussbench.data.registry import get_dataset
from fussbench.errors import FussbenchError
from fussbench.features.benchmark import benchmark_caching
from fussbench.params import Params
from stages.features import backbone_config
from stages.paths import raw_dir


def run(params: Params, images: int) -> dict[str, object]:
    """Time the first ``images`` training images of ``params.dataset``."""
    if images < 1:
        raise FussbenchError(f"--images must be >= 1, got {images}")
    spec = get_dataset(params.dataset)
    samples = spec.samples(raw_dir(spec.name), spec.train_split)[:images]
    result = benchmark_caching(spec, samples, backbone_config(params), params.features.batch_size)
    return {"dataset": spec.name, "backbone": params.backbone, **result}
