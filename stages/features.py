"""Stage ``features``: cache the backbone features of the training and evaluation splits
(and, under ``evaluation.flip: true``, those of the mirrored evaluation images)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.cache import build_split
from fussbench.features.device import Placement, resolve_placement
from fussbench.features.flipped import build_flipped
from fussbench.features.size import check_free_space, dataset_sizes, describe_sizes
from fussbench.params import Params
from fussbench.paths import features_dir, raw_dir

if TYPE_CHECKING:
    from fussbench.features.backbones import DenseBackbone


def _backbone(params: Params) -> tuple[DenseBackbone, Placement]:
    """The frozen backbone of params on its device, and that placement."""
    from fussbench.features.backbones import build_backbone  # imports timm: only here

    placement = resolve_placement(params.features.device, params.features.precision)
    return build_backbone(params.backbone_config()).to(placement.device), placement


def run(params: Params, dataset: str | None = None) -> Path:
    """Write ``data/features/<dataset>/<backbone>/<split>/`` for every split of a dataset
    (default: the main setup's); under ``evaluation.flip: true`` also every split's but
    the training split's ``flipped/`` (all of them, so that any ``evaluation.split``
    finds its own without rerunning this stage)."""
    spec = params.dataset_spec(dataset)
    settings = params.features
    backbone, placement = _backbone(params)
    config = params.backbone_config()
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
    if params.evaluation.flip:
        for split in [split for split in by_split if split != spec.train_split]:
            _flip(params, spec, split, backbone, placement)
    return out_dir


def run_flipped(params: Params, dataset: str | None = None) -> Path:
    """Write the ``flipped/`` features of the evaluation split (``evaluation.split``, else
    the dataset's) of an existing cache of a dataset (default: the main setup's); returns
    that folder."""
    spec = params.dataset_spec(dataset)
    split = params.evaluation.split or spec.eval_split
    if split not in spec.split_counts:
        raise FussbenchError(
            f"evaluation.split '{split}' is not a split of {spec.name}; "
            f"valid: {', '.join(spec.split_counts)}"
        )
    backbone, placement = _backbone(params)
    return _flip(params, spec, split, backbone, placement)


def _flip(
    params: Params, spec: DatasetSpec, split: str, backbone: DenseBackbone, placement: Placement
) -> Path:
    """:func:`~fussbench.features.flipped.build_flipped` of one cached split."""
    settings = params.features
    return build_flipped(
        spec,
        spec.samples(raw_dir(spec.name), split),
        split,
        params.backbone_config(),
        backbone,
        features_dir(spec.name, params.backbone) / split,
        settings.batch_size,
        placement,
        settings.loader_workers,
    )
