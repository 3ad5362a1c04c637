"""Stage ``features``: cache the backbone features of the training and evaluation splits."""

from __future__ import annotations

from pathlib import Path

from fussbench.data.registry import get_dataset
from fussbench.features.cache import build_split
from fussbench.features.config import BackboneConfig
from fussbench.params import Params
from stages.paths import features_dir, raw_dir


def backbone_config(params: Params) -> BackboneConfig:
    """The backbone the params ask for."""
    return BackboneConfig(
        name=params.backbone,
        layers=params.features.layers,
        pretrained=params.features.pretrained,
        checkpoint=params.features.checkpoint,
    )


def run(params: Params, dataset: str | None = None) -> Path:
    """Write ``data/features/<dataset>/<backbone>/<split>/`` for every split of a dataset
    (default: the main setup's)."""
    spec = get_dataset(dataset or params.dataset)
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    config = backbone_config(params)
    backbone = build_backbone(config)
    out_dir = features_dir(spec.name, params.backbone)
    for split in spec.split_counts:
        samples = spec.samples(raw_dir(spec.name), split)
        build_split(
            spec, samples, split, config, backbone, out_dir / split, params.features.batch_size
        )
    return out_dir
