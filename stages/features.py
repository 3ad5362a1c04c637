"""Stage ``features``: cache the backbone features of the training and evaluation splits."""

from __future__ import annotations

from pathlib import Path

from fussbench.features.cache import build_split
from fussbench.features.device import resolve_placement
from fussbench.features.size import check_free_space, dataset_sizes, describe_sizes
from fussbench.params import Params
from fussbench.paths import features_dir, raw_dir


def run(params: Params, dataset: str | None = None) -> Path:
    """Write ``data/features/<dataset>/<backbone>/<split>/`` for every split of a dataset
    (default: the main setup's)."""
    spec = params.dataset_spec(dataset)
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    settings = params.features
    placement = resolve_placement(settings.device, settings.precision)
    config = params.backbone_config()
    backbone = build_backbone(config).to(placement.device)
    out_dir = features_dir(spec.name, params.backbone)
    by_split = {split: spec.samples(raw_dir(spec.name), split) for split in spec.split_counts}
    counts = {split: len(samples) for split, samples in by_split.items()}
    sizes = dataset_sizes(spec, counts, config.preprocessing, backbone.channels, backbone.stride)
    print("\n".join([f"feature cache {out_dir}:", *describe_sizes(sizes)]), flush=True)
    check_free_space(sizes, out_dir)
    for split, samples in by_split.items():
        build_split(
            spec,
            samples,
            split,
            config,
            backbone,
            out_dir / split,
            settings.batch_size,
            placement,
            settings.loader_workers,
        )
    return out_dir
